"""MLR-CUHK03: CUHK03 with one camera of each pair down-sampled (DI-REID Table 1).

Two loaders:

- ``MLRCUHK03`` builds the protocol from the raw ``cuhk-03.mat`` (HDF5 / MATLAB v7.3). In it
  ``labeled`` and ``detected`` are 1 x 5 cells, one per camera pair; each holds a
  persons x 10 cell of image references (images 1-5 from the pair's first camera, 6-10 from the
  second; empty cells are missing views). Every image is written to the cache as PNG: HR-camera
  images as they are, LR-camera images down-sampled. pid = the running index of (pair, person)
  in the file; camid = 0 for a pair's first camera, 1 for its second.
- ``MLRCUHK03Folder`` reads the official DI-REID release folder, which already holds the split.
"""
import glob
import os
import re

import h5py
import numpy as np
from PIL import Image
from torchreid.reid.data.datasets.dataset import ImageDataset

from direid_plugin.data.datasets.protocol_cache import (
    RawDataError,
    load_or_build,
    require_path,
    save_png,
    write_degraded,
)
from direid_plugin.data.datasets.splits import SplitProtocolDataset, identity_splits
from direid_plugin.data.degradations import MLR_FACTORS, mlr_downsample

MAT_LAYOUT = (
    "<root>/cuhk03/cuhk03_release/cuhk-03.mat, the CUHK03 release file (MATLAB v7.3 with 'labeled' and "
    "'detected' cells of camera pairs x persons x 10 images)"
)
VIEWS_PER_CAMERA = 5  # images 1-5 of a person come from the first camera of the pair, 6-10 from the second


def cuhk03_images(mat, kind):
    """``[(pid, camid, name, ref)]`` for every non-empty image of ``kind`` in an open cuhk-03.mat."""
    if kind not in mat:
        raise RawDataError(f"{mat.filename} has no '{kind}' cell; expected layout: {MAT_LAYOUT}")
    images, pid = [], 0
    for pair, pair_ref in enumerate(mat[kind][0]):
        persons = mat[pair_ref][()].T  # MATLAB stores arrays transposed: rows are persons here
        for person in range(persons.shape[0]):
            for index, ref in enumerate(persons[person]):
                shape = mat[ref].shape
                if len(shape) != 3 or 0 in shape:  # an empty cell: this view of the person is missing
                    continue
                camid = index // VIEWS_PER_CAMERA
                images.append((pid, camid, f"{pair + 1}_{person + 1:03d}_{camid + 1}_{index + 1:02d}.png", ref))
            pid += 1
    return images


def read_cuhk03_image(mat, ref):
    return Image.fromarray(np.ascontiguousarray(mat[ref][()].T))  # stored as (3, W, H)


class MLRCUHK03(SplitProtocolDataset):
    """MLR-CUHK03 from ``cuhk-03.mat``: 10 seeded splits of ``num_test_ids`` test identities (1,367/100).

    Test identities are drawn among those seen by both cameras; all others train. Query = LR
    images of the test identities, gallery = all their HR images (the single-shot evaluation
    samples one per identity).

    Args:
        cuhk03_labeled: manually cropped boxes if True, detected ones otherwise (torchreid's flag).
        lr_camid: which camera of each pair is down-sampled (1 = second, 0 = first).
        seed, num_splits, build_cache: as for ``MLRViper``.
    """

    def __init__(self, root="", split_id=0, seed=0, cuhk03_labeled=False, lr_camid=1, num_test_ids=100,
                 num_splits=10, build_cache=True, **kwargs):
        if lr_camid not in (0, 1):
            raise ValueError(f"lr_camid must be 0 or 1 (a camera of the pair), got {lr_camid!r}")
        mat_path = os.path.join(os.path.abspath(os.path.expanduser(root)), "cuhk03", "cuhk03_release", "cuhk-03.mat")
        require_path(mat_path, MAT_LAYOUT)
        kind = "labeled" if cuhk03_labeled else "detected"

        def build(tmp):
            with h5py.File(mat_path, "r") as mat:
                entries = cuhk03_images(mat, kind)
                lr_jobs = []
                for pid, camid, name, ref in entries:
                    if camid == lr_camid:
                        lr_jobs.append((f"lr/{name}", f"{kind}/{name}", lambda ref=ref: read_cuhk03_image(mat, ref)))
                    else:
                        save_png(read_cuhk03_image(mat, ref), os.path.join(tmp, "hr", name))
                degraded = write_degraded(tmp, lr_jobs, seed, mlr_downsample)
            images = [[f"{'lr' if camid == lr_camid else 'hr'}/{name}", pid, camid] for pid, camid, name, _ in entries]
            cameras = {}
            for pid, camid, _, _ in entries:
                cameras.setdefault(pid, set()).add(camid)
            both = [pid for pid, cams in cameras.items() if len(cams) == 2]
            splits = identity_splits(list(cameras), num_test_ids, num_splits, seed, testable=both)
            return {"images": images, "lr_camids": [lr_camid], "splits": splits, "degraded": degraded}

        params = {"dataset": "mlr_cuhk03", "mat_path": mat_path, "images": kind, "seed": seed, "lr_camid": lr_camid,
                  "num_test_ids": num_test_ids, "num_splits": num_splits, "factors": list(MLR_FACTORS)}
        folder, record = load_or_build("mlr_cuhk03", params, [mat_path], build, allow_build=build_cache)
        super().__init__(folder, record, split_id, **kwargs)


FOLDER_LAYOUT = (
    "<root>/MLR_CUHK03/{train,query,gallery}/<pid>/<5-digit pid>_c<cam>_<5-digit index>.jpg with camera 0 the LR "
    "camera (the official DI-REID release; val/ is not read)"
)
OFFICIAL_NAME = re.compile(r"^(\d{5})_c(\d)_\d+\.(jpg|jpeg|png)$", re.IGNORECASE)


def parse_official_name(path):
    """``(pid, camid)`` of an official DI-REID file name: pid = the first 5 digits, camid = the digit after 'c'."""
    match = OFFICIAL_NAME.match(os.path.basename(path))
    if match is None:
        raise RawDataError(f"{path}: file name is not <5-digit pid>_c<cam>_<index>.jpg; expected layout: {FOLDER_LAYOUT}")
    return int(match.group(1)), int(match.group(2))


def read_official_subset(base, subset):
    """``[(path, pid, camid)]`` of ``base/subset/<pid>/*``, checking each file's pid against its folder."""
    folder = require_path(os.path.join(base, subset), FOLDER_LAYOUT)
    items = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "*"))):
        pid, camid = parse_official_name(path)
        identity_dir = os.path.basename(os.path.dirname(path))
        if not identity_dir.isdigit() or int(identity_dir) != pid:
            raise RawDataError(f"{path}: file name says pid {pid} but it lies in identity folder '{identity_dir}'")
        items.append((path, pid, camid))
    if not items:
        raise RawDataError(f"{folder} holds no images; expected layout: {FOLDER_LAYOUT}")
    return items


class MLRCUHK03Folder(ImageDataset):
    """The official DI-REID ``MLR_CUHK03`` folder: one fixed split, camera 0 = LR, read in place."""

    dataset_folder = "MLR_CUHK03"

    def __init__(self, root="", split_id=0, **kwargs):
        if split_id != 0:
            raise ValueError(f"{self.dataset_folder} holds one fixed split; use split_id=0, not {split_id}")
        base = os.path.join(os.path.abspath(os.path.expanduser(root)), self.dataset_folder)
        train = read_official_subset(base, "train")
        label = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in train}))}
        train = [(path, label[pid], camid) for path, pid, camid in train]
        self.lr_camids = frozenset({0})
        super().__init__(train, read_official_subset(base, "query"), read_official_subset(base, "gallery"), **kwargs)
