"""The corruption benchmark's test sets on any registered image dataset: ``corrupted_<name>``.

The base dataset is built as torchreid builds it (same root, split and flags); its training set stays
clean, and its test images are corrupted (data/corruptions.py) into a cache with a verified manifest,
so that repeated evaluations read identical files. Three evaluation modes, as in the benchmark:

* ``corrupted_<name>``: query and gallery corrupted;
* ``corrupted_query_<name>``: queries corrupted, the gallery clean;
* ``corrupted_gallery_<name>``: the gallery corrupted, queries clean.

Each test image gets one corruption type and one severity level, drawn uniformly by ``seed`` (the
benchmark's "random type, random severity" protocol). Fixed type and level, for per-corruption
tables, are named ``corrupted[_query|_gallery]_<corruption>_<level>_<name>`` (e.g.
``corrupted_fog_3_viper``); such a name is registered when a config or ``corrupted_name`` asks for it
(20 x 5 x 3 names per dataset would crowd torchreid's list).

One cache serves the three modes: it holds the corrupted version of every query and gallery image,
drawn image by image from one stream in path order, so an image is corrupted alike in every mode.
"""
import functools
import os
import re

from torchreid.reid.data.datasets.dataset import ImageDataset

from direid_plugin.data.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, check_severity, corrupt
from direid_plugin.data.datasets.protocol_cache import image_jobs, load_or_build, write_degraded
from direid_plugin.data.datasets.wrappers import BASE_FLAGS, build_base
from direid_plugin.registry import dataset_registry, register_dataset

# mode -> the test sets it corrupts
MODES = {"both": ("query", "gallery"), "query": ("query",), "gallery": ("gallery",)}
_MODE_PREFIX = {"both": "", "query": "query_", "gallery": "gallery_"}
PREFIX = "corrupted_"


def draw_corruption(corruption=None, severity=None):
    """A ``degrade(img, rng)`` for ``write_degraded``: type and level drawn where None, fixed where given.

    The three draws are made for every image whatever is fixed, so the per-image seeds of a random
    and a fixed set come from the same positions of the stream."""

    def degrade(img, rng):
        name = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
        level = int(rng.integers(SEVERITIES[0], SEVERITIES[-1] + 1))
        seed = int(rng.integers(0, 2**31 - 1))
        name, level = corruption or name, severity or level
        return corrupt(img, name, level, seed), {"corruption": name, "severity": level, "seed": seed}

    return degrade


class CorruptedDataset(ImageDataset):
    """Registered dataset ``base`` with its test images corrupted (see the module doc).

    Args:
        base: a registered image dataset name (torchreid's or the plugin's).
        corrupted: the mode, ``'both'``, ``'query'`` or ``'gallery'``: the test sets that are corrupted
            (torchreid's own ``mode`` kwarg, train / query / gallery, passes through to ``ImageDataset``).
        corruption, severity: a fixed corruption name and level (1-5); None draws them per image.
        seed: fixes the per-image draws (recorded in the manifest).
        build_cache: False only verifies an existing cache.
    """

    def __init__(self, base, corrupted="both", corruption=None, severity=None, root="", split_id=0, seed=0,
                 build_cache=True, **kwargs):
        if corrupted not in MODES:
            raise ValueError(f"corrupted must be one of the modes {sorted(MODES)}, got {corrupted!r}")
        if corruption is not None:
            check_corruption(corruption, severity)
        elif severity is not None:
            check_severity(severity)
        root = os.path.abspath(os.path.expanduser(root))
        base_flags = {key: kwargs.pop(key) for key in BASE_FLAGS if key in kwargs}
        dataset = build_base(base, root, split_id, base_flags)
        sets = {name: [item[:3] for item in getattr(dataset, name)] for name in ("train", "query", "gallery")}
        targets = sorted({path for name in MODES["both"] for path, _, _ in sets[name]})
        name = f"corrupted_{base}"

        def build(tmp):
            return {"corrupted": write_degraded(tmp, image_jobs("corrupted", targets), seed,
                                                draw_corruption(corruption, severity))}

        params = {"dataset": name, "root": root, "split_id": split_id, "base_flags": base_flags, "seed": seed,
                  "corruption": corruption, "severity": severity}
        folder, record = load_or_build(name, params, targets, build, allow_build=build_cache)
        cached = {entry["source"]: os.path.join(folder, rel) for rel, entry in record["corrupted"].items()}
        self.clean_query, self.clean_gallery = sets["query"], sets["gallery"]  # same order, to evaluate any mode
        for set_name in MODES[corrupted]:
            sets[set_name] = [(cached[path], pid, camid) for path, pid, camid in sets[set_name]]
        self.cache_dir = folder
        self.manifest = record
        self.corrupted_sets = MODES[corrupted]
        self.base_dataset_name = base
        self.corruption, self.severity = corruption, severity
        super().__init__(sets["train"], sets["query"], sets["gallery"], **kwargs)


def corrupted_name(base, mode="both", corruption=None, severity=None):
    """The dataset name of ``base`` under ``mode`` (and a fixed ``corruption`` at ``severity``),
    registered with torchreid if it was not."""
    if mode not in MODES:
        raise ValueError(f"corrupted dataset mode must be one of {sorted(MODES)}, got {mode!r}")
    if (corruption is None) != (severity is None):
        raise ValueError("give both a corruption and a severity, or neither (random type and level per image)")
    fixed = ""
    if corruption is not None:
        check_corruption(corruption, severity)
        fixed = f"{corruption}_{severity}_"
    name = f"{PREFIX}{_MODE_PREFIX[mode]}{fixed}{base}"
    register_dataset(name, functools.partial(CorruptedDataset, base=base, corrupted=mode, corruption=corruption,
                                             severity=severity))
    return name


_FIXED = re.compile(r"^(" + "|".join(CORRUPTIONS) + r")_(\d+)_(.+)$")


def register_if_corrupted_name(name):
    """Register ``name`` if it names a corrupted variant of a registered base: a fixed corruption
    (``corrupted_fog_3_viper``) or the random protocol on a base registered after the plugin's import.

    An unknown corruption or level over a registered base raises ``CorruptionError`` listing the valid ones."""
    if not name.startswith(PREFIX) or name in dataset_registry():
        return
    rest, mode = name[len(PREFIX):], "both"
    for candidate, prefix in _MODE_PREFIX.items():
        if prefix and rest.startswith(prefix):
            rest, mode = rest[len(prefix):], candidate
    if rest in dataset_registry():
        corrupted_name(rest, mode)
        return
    fixed = _FIXED.match(rest)
    if fixed:
        corruption, severity, base = fixed.group(1), int(fixed.group(2)), fixed.group(3)
        if base in dataset_registry():
            corrupted_name(base, mode, corruption, severity)
            return
    level = re.match(r"^([a-z_]+?)_(\d+)_(.+)$", rest)
    if level and level.group(3) in dataset_registry():
        check_corruption(level.group(1), int(level.group(2)))  # raises, naming the valid values


def corrupted_datasets(bases):
    """``{name: partial}`` of the three random-protocol modes of every dataset in ``bases``."""
    return {f"{PREFIX}{prefix}{base}": functools.partial(CorruptedDataset, base=base, corrupted=mode)
            for base in bases for mode, prefix in _MODE_PREFIX.items()}
