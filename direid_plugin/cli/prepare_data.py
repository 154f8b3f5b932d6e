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
from direid_plugin.data.datasets import DATASETS
from direid_plugin.data.datasets.protocol_cache import RawDataError
from direid_plugin.data.image_io import ImageReadError
from direid_plugin.data.manifest import ManifestError


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
    return lines


def main(argv=None):
    parser = arguments.parser("prepare_data")
    args = parser.parse_args(argv)
    if args.name not in DATASETS:
        parser.exit(2, f"error: unknown dataset '{args.name}'{close_matches(args.name, sorted(DATASETS))}; choose from "
                       f"{', '.join(sorted(DATASETS))}\n")
    kwargs = {"root": args.root, "seed": args.seed, "verbose": False}
    if args.verify_only:
        kwargs["build_cache"] = False
    try:
        dataset = DATASETS[args.name](**kwargs)
    except (ManifestError, RawDataError, ImageReadError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    print("\n".join(summary(args.name, dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
