"""The real images pictures show: a dataset's splits by name, HR/LR labels, loading as model input."""
import numpy as np
import torch
from torchreid.reid.data.datasets import init_image_dataset

from direid_plugin.config import ConfigError
from direid_plugin.data.image_io import read_image


def picture_dataset(cfg):
    """``(name, dataset)`` of ``data.targets[0]``: its train/query/gallery lists and ``lr_camids``."""
    if not cfg.data.targets:
        raise ConfigError("data.targets is empty: name the dataset whose images the picture shows")
    name = cfg.data.targets[0]
    return name, init_image_dataset(name, root=cfg.data.root, split_id=cfg.data.split_id, mode="query", verbose=False)


def quality_label(dataset, item):
    """'LR <pid>' for an image of one of the dataset's low-resolution cameras, else 'HR <pid>'."""
    _, pid, camid = item[:3]
    return f"{'LR' if camid in (getattr(dataset, 'lr_camids', None) or ()) else 'HR'} {pid}"


def same_identity_pairs(query, gallery, count):
    """Up to ``count`` (gallery item, query item) pairs of one identity each, in query order."""
    gallery_by_pid = {}
    for item in gallery:
        gallery_by_pid.setdefault(item[1], item)
    pairs, seen = [], set()
    for item in query:
        pid = item[1]
        if pid in gallery_by_pid and pid not in seen:
            seen.add(pid)
            pairs.append((gallery_by_pid[pid], item))
    return pairs[:count]


def sample_items(items, count, seed):
    """``count`` items drawn without replacement (all when ``count`` <= 0 or >= len), in their order."""
    if count <= 0 or count >= len(items):
        return list(items)
    picked = np.random.default_rng(seed).choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(picked)]


def load_batch(paths, transform, device):
    """(N, 3, H, W) model input from image files."""
    return torch.stack([transform(read_image(path)) for path in paths]).to(device)
