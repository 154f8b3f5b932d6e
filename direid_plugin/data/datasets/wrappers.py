"""The MLR and low-light protocols on any torchreid image dataset: ``mlr_<name>``, ``lowlight_<name>``.

The base dataset is built by torchreid (same root, split and flags); then every image of the LR
camera -- train, query and gallery alike, as MLR-VIPeR and MLR-CUHK03 down-sample every image of
their LR camera -- is degraded into a cache with a manifest: ``mlr_`` down-samples each by a factor
drawn from {2, 3, 4} and resizes back; ``lowlight_`` darkens each with gamma ~ U[2, 3.5] and gain
~ U[0.75, 1] (the DI-REID illumination degradation). The LR camera is the query camera with the
lowest id (VIPeR's cam_a, CUHK03's first camera) unless ``lr_camids`` names others; the other
cameras stay as they are, so the training set holds real LR and HR images of the same identities
(DI-REID's stage-1 real pairs) and the dataset declares the LR camera in ``lr_camids``. On a
dataset whose queries come from several cameras, only the LR camera's queries are LR.

``mlr_queries_<name>`` / ``lowlight_queries_<name>`` keep the query-only variant: every query
image degraded, train and gallery as the base dataset has them; it declares no LR camera, since
its training set has no real LR image.

The base dataset is torchreid's own class, so it reads (and, like torchreid's VIPeR with its
splits.json, may write) files under ``root`` exactly as it does without the plugin.

Names: the dedicated ``mlr_viper`` and ``mlr_cuhk03`` (the papers' protocols) win; the wrappers
of those two datasets are registered as ``mlr_wrap_viper`` and ``mlr_wrap_cuhk03``.
"""
import functools
import os

from torchreid.reid.data.datasets import init_image_dataset
from torchreid.reid.data.datasets.dataset import ImageDataset

from direid_plugin.data.datasets.protocol_cache import RawDataError, image_jobs, load_or_build, write_degraded
from direid_plugin.data.degradations import PROTOCOL_DEGRADATIONS
from direid_plugin.registry import dataset_registry

# torchreid's stock image datasets that have a query set (cuhksysu is train-only).
STOCK_DATASETS = (
    "market1501", "cuhk03", "dukemtmcreid", "msmt17", "viper", "grid", "cuhk01", "ilids", "sensereid", "prid",
    "cuhk02", "university1652",
)
# Flags ImageDataManager passes to every dataset that only the base dataset understands.
BASE_FLAGS = ("cuhk03_labeled", "cuhk03_classic_split", "market1501_500k")


def build_base(base, root, split_id, base_flags):
    """Build torchreid dataset ``base`` quietly; a missing folder is an error, never a download."""
    stock = dataset_registry().get(base)
    if stock is None:
        raise ValueError(f"'{base}' is not a registered torchreid image dataset")
    folder = os.path.join(root, getattr(getattr(stock, "func", stock), "dataset_dir", ""))
    layout = f"torchreid's '{base}' layout under {folder} (see the torchreid dataset docs)"
    if not os.path.isdir(folder):  # checked first: torchreid would try to download it, which fails offline
        raise RawDataError(f"{folder} not found; expected layout: {layout}")
    try:
        return init_image_dataset(base, root=root, split_id=split_id, verbose=False, **base_flags)
    except RuntimeError as e:  # torchreid's check_before_run: '"<path>" is not found'
        raise RawDataError(f"{e}; expected layout: {layout}") from None


class DegradedCameraDataset(ImageDataset):
    """torchreid dataset ``base`` under the MLR or low-light protocol (see the module doc).

    Args:
        base: a stock torchreid image dataset name.
        degradation: ``'mlr'`` (down-sampling) or ``'lowlight'`` (gamma darkening).
        lr_camids: the LR cameras; None = the query camera with the lowest id (every query
            camera with ``queries_only``).
        queries_only: degrade the LR cameras' query images only (train and gallery untouched).
        seed: fixes the per-image degradation parameters (recorded in the manifest).
        build_cache: False only verifies an existing cache.
    """

    def __init__(self, base, degradation="mlr", root="", split_id=0, seed=0, lr_camids=None, queries_only=False,
                 build_cache=True, **kwargs):
        if degradation not in PROTOCOL_DEGRADATIONS:
            raise ValueError(f"degradation must be one of {sorted(PROTOCOL_DEGRADATIONS)}, got {degradation!r}")
        root = os.path.abspath(os.path.expanduser(root))
        base_flags = {key: kwargs.pop(key) for key in BASE_FLAGS if key in kwargs}
        dataset = build_base(base, root, split_id, base_flags)
        train, query, gallery = ([item[:3] for item in items] for items in (dataset.train, dataset.query, dataset.gallery))
        query_camids = sorted({camid for _, _, camid in query})
        if lr_camids is not None:
            lr = sorted(set(lr_camids))
        else:
            lr = query_camids if queries_only else query_camids[:1]
        degraded_sets = (query,) if queries_only else (train, query, gallery)
        targets = sorted({path for items in degraded_sets for path, _, camid in items if camid in lr})
        if not any(camid in lr for _, _, camid in query):
            raise ValueError(f"{base} has no query images from cameras {lr}; query cameras are {query_camids}")
        name = f"{degradation}_wrap_{base}"  # the cache label; distinct from the dedicated datasets' caches

        def build(tmp):
            jobs = image_jobs("degraded", targets)
            return {"lr_camids": lr, "degraded": write_degraded(tmp, jobs, seed, PROTOCOL_DEGRADATIONS[degradation])}

        params = {"dataset": name, "root": root, "split_id": split_id, "base_flags": base_flags, "seed": seed,
                  "lr_camids": lr, "queries_only": queries_only}
        folder, record = load_or_build(name, params, targets, build, allow_build=build_cache)
        cached = {entry["source"]: os.path.join(folder, rel) for rel, entry in record["degraded"].items()}
        swap = lambda items: [(cached.get(path, path), pid, camid) for path, pid, camid in items]
        self.cache_dir = folder
        self.manifest = record
        self.lr_camids = frozenset() if queries_only else frozenset(lr)
        self.base_dataset_name = base
        super().__init__(swap(train), swap(query), swap(gallery), **kwargs)  # only degraded paths are in the cache


def wrapper_datasets(taken=()):
    """``{name: partial}`` for ``<kind>_<stock>`` and ``<kind>_queries_<stock>``, kind ``mlr`` or
    ``lowlight``; a name in ``taken`` gets ``<kind>_wrap_<stock>``."""
    entries = {}
    for kind in PROTOCOL_DEGRADATIONS:
        for base in STOCK_DATASETS:
            name = f"{kind}_{base}" if f"{kind}_{base}" not in taken else f"{kind}_wrap_{base}"
            entries[name] = functools.partial(DegradedCameraDataset, base=base, degradation=kind)
            entries[f"{kind}_queries_{base}"] = functools.partial(DegradedCameraDataset, base=base, degradation=kind,
                                                                  queries_only=True)
    return entries
