"""Seeded identity splits and the cross-camera protocol built from a cache manifest.

The split-protocol datasets (MLR-VIPeR, MLR-CUHK03, CAVIAR) record in their manifest every
image as ``[path, pid, camid]`` (a relative path lies inside the cache, an absolute one is a raw
file referenced in place), the LR camera ids, and the identity splits. Any split then gives:
train = all images of the train identities (relabelled 0..N-1), query = LR-camera images of the
test identities, gallery = HR-camera images of the test identities (raw pids kept).

With ``validation_ids=K`` the same protocol runs inside the split's training identities: K of
them (seeded) take the test role and the model trains on the others, so configurations can be
compared without touching the split's test identities.
"""
import os

import numpy as np
from torchreid.reid.data.datasets.dataset import ImageDataset

# Independent random streams per protocol seed (datasets/protocol_cache.py draws stream 1 for the
# degradations), so e.g. changing the number of splits keeps the degradation factors.
SPLIT_STREAM = 0
VALIDATION_STREAM = 2


def identity_splits(pids, num_test, num_splits, seed, testable=None, stream=(SPLIT_STREAM,)):
    """``num_splits`` random ``{"train": [...], "test": [...]}`` splits of ``pids`` (sorted lists).

    Test identities are drawn from ``testable`` (default: all), for example only those seen by
    both cameras; every other identity trains. ``stream`` keys the random stream within ``seed``.
    """
    pids = sorted(set(pids))
    candidates = sorted(set(pids if testable is None else testable))
    if not 0 < num_test < len(pids) or num_test > len(candidates):
        raise ValueError(
            f"cannot draw {num_test} test identities: {len(pids)} identities in all, "
            f"{len(candidates)} of them usable for testing"
        )
    rng = np.random.default_rng([seed, *stream])
    splits = []
    for _ in range(num_splits):
        test = set(rng.choice(candidates, size=num_test, replace=False).tolist())
        splits.append({"train": [p for p in pids if p not in test], "test": sorted(test)})
    return splits


def validation_split(record, split_id, num_ids):
    """``{"train", "test"}`` within split ``split_id``'s training identities: ``num_ids`` of them,
    drawn among those with images from both an LR and an HR camera, become the test identities."""
    lr_camids = set(record["lr_camids"])
    train = record["splits"][split_id]["train"]
    seen_lr, seen_hr = set(), set()
    for _, pid, camid in record["images"]:
        (seen_lr if camid in lr_camids else seen_hr).add(pid)
    testable = [pid for pid in train if pid in seen_lr and pid in seen_hr]
    try:
        return identity_splits(train, num_ids, 1, record["params"]["seed"], testable,
                               stream=(VALIDATION_STREAM, split_id))[0]
    except ValueError as e:  # too many asked for
        raise ValueError(f"validation_ids={num_ids}: split {split_id} has {len(train)} training identities; {e}") from None


def protocol_lists(record, folder, split_id, validation_ids=0):
    """``(train, query, gallery)`` item lists of split ``split_id`` from a manifest ``record``;
    ``validation_ids > 0`` gives the validation protocol inside its training identities instead."""
    splits = record["splits"]
    if not 0 <= split_id < len(splits):
        raise ValueError(f"split_id={split_id} is out of range: {folder} has splits 0..{len(splits) - 1}")
    split = validation_split(record, split_id, validation_ids) if validation_ids else splits[split_id]
    label = {pid: i for i, pid in enumerate(split["train"])}
    test = set(split["test"])
    lr_camids = set(record["lr_camids"])
    train, query, gallery = [], [], []
    for path, pid, camid in record["images"]:
        path = os.path.join(folder, path)  # absolute (raw) paths pass through unchanged
        if pid in label:
            train.append((path, label[pid], camid))
        elif pid in test:
            (query if camid in lr_camids else gallery).append((path, pid, camid))
    return train, query, gallery


class SplitProtocolDataset(ImageDataset):
    """An ``ImageDataset`` whose lists come from a verified cache manifest (see module doc).

    Attributes for tools: ``cache_dir``, ``manifest``, ``lr_camids``.
    """

    def __init__(self, folder, record, split_id, query_source=None, validation_ids=0, **kwargs):
        """``query_source(pid, camid) -> path`` replaces the query images (e.g. clean originals);
        ``validation_ids``: see the module doc."""
        self.cache_dir = folder
        self.manifest = record
        self.lr_camids = frozenset(record["lr_camids"])
        train, query, gallery = protocol_lists(record, folder, split_id, validation_ids)
        if query_source is not None:
            query = [(query_source(pid, camid), pid, camid) for _, pid, camid in query]
        super().__init__(train, query, gallery, **kwargs)
