"""PKU-Reid as distributed in a course project: ``<root>/pku_reid/{train,val/query,val/gallery}``.

Each split folder holds one folder per identity with files ``<cam>_<view>.png`` (cam 01/02,
views 1-8). Used as a small real clean dataset for baselines and tests.
"""
import glob
import os
import re

from torchreid.reid.data.datasets.dataset import ImageDataset

_NAME = re.compile(r"^(\d+)_(\d+)\.png$")
LAYOUT = "<root>/pku_reid/train/<pid>/<cam>_<view>.png, <root>/pku_reid/val/{query,gallery}/<pid>/<cam>_<view>.png"


def _scan(folder, relabel):
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"PKU-Reid folder missing: {folder}; expected layout {LAYOUT}")
    items = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "*.png"))):
        match = _NAME.match(os.path.basename(path))
        if match is None:
            raise ValueError(f"{path}: file name is not <cam>_<view>.png (layout {LAYOUT})")
        items.append((path, int(os.path.basename(os.path.dirname(path))), int(match.group(1)) - 1))
    if not items:
        raise FileNotFoundError(f"no PKU-Reid images under {folder}; expected layout {LAYOUT}")
    if relabel:
        labels = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in items}))}
        items = [(path, labels[pid], cam) for path, pid, cam in items]
    return items


class PKUReid(ImageDataset):
    dataset_dir = "pku_reid"

    def __init__(self, root="", **kwargs):
        base = os.path.join(os.path.abspath(os.path.expanduser(root)), self.dataset_dir)
        train = _scan(os.path.join(base, "train"), relabel=True)
        query = _scan(os.path.join(base, "val", "query"), relabel=False)
        gallery = _scan(os.path.join(base, "val", "gallery"), relabel=False)
        super().__init__(train, query, gallery, **kwargs)
