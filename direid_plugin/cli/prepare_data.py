"""``tools/prepare_data.py NAME --root DIR``: build (or only verify) a plugin dataset's cache.

Prints the cache folder, the identities per split, the image counts and the histogram of
down-sampling factors; exits non-zero with one line naming the problem (missing raw data and
its expected layout, or the damaged cache file).
"""
import collections
import sys

import direid_plugin  # noqa: F401  (applies the torchreid fixes the datasets rely on)
from direid_plugin.cli import arguments
from direid_plugin.config import close_matches
from direid_plugin.data.corruptions import CorruptionError
from direid_plugin.data.datasets import DATASETS
from direid_plugin.data.datasets.corrupted import PREFIX, register_if_corrupted_name
from direid_plugin.data.datasets.protocol_cache import RawDataError
from direid_plugin.data.image_io import ImageReadError
from direid_plugin.data.manifest import ManifestError
from direid_plugin.registry import dataset_registry


def summary(name, dataset):
    """Lines describing a built dataset and its cache."""
    cache_dir = getattr(dataset, "cache_dir", None)
    record = getattr(dataset, "manifest", None) or {}
    lines = [f"{name}: cache {cache_dir} (verified)" if cache_dir else f"{name}: no cache (read in place)"]
    sizes = collections.Counter((len(s["train"]), len(s["test"])) for s in record.get("splits", []))
    for (num_train, num_test), count in sorted(sizes.items()):
        lines.append(f"  {count} split(s): {num_train} train ids / {num_test} test ids")
    lines.append(
        f"  images: train {len(dataset.train)} ({dataset.num_train_pids} ids), "
        f"query {len(dataset.query)}, gallery {len(dataset.gallery)}"
    )
    factors = collections.Counter(entry["factor"] for entry in record.get("degraded", {}).values() if "factor" in entry)
    if factors:
        lines.append("  down-sampling factors: " + ", ".join(f"x{f}: {n}" for f, n in sorted(factors.items())))
    elif record.get("degraded"):
        lines.append(f"  degraded images: {len(record['degraded'])}")
    corrupted = collections.Counter((e["corruption"], e["severity"]) for e in record.get("corrupted", {}).values())
    if corrupted:
        lines.append(f"  corrupted images: {sum(corrupted.values())}, " + ", ".join(
            f"{name} {level}: {n}" for (name, level), n in sorted(corrupted.items())))
    return lines


def main(argv=None):
    parser = arguments.parser("prepare_data")
    args = parser.parse_args(argv)
    try:
        register_if_corrupted_name(args.name)  # corrupted_<corruption>_<level>_<name> is registered on demand
    except CorruptionError as e:
        parser.exit(2, f"error: dataset '{args.name}': {e}\n")
    datasets = {**DATASETS, **{n: c for n, c in dataset_registry().items() if n.startswith(PREFIX)}}
    if args.name not in datasets:
        parser.exit(2, f"error: unknown dataset '{args.name}'{close_matches(args.name, sorted(DATASETS))}; choose from "
                       f"{', '.join(sorted(DATASETS))}\n")
    kwargs = {"root": args.root, "seed": args.seed, "verbose": False}
    if args.verify_only:
        kwargs["build_cache"] = False
    try:
        dataset = datasets[args.name](**kwargs)
    except (ManifestError, RawDataError, ImageReadError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    print("\n".join(summary(args.name, dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
