"""CAVIAR4REID: genuinely low-resolution Re-ID across two shopping-centre cameras (DI-REID Table 1).

File names are ``PPPPIII.jpg`` (4-digit person, 3-digit image index). The dataset has 72
persons and 1,220 images: 50 persons seen by both cameras with 10 images per camera and 22 seen
by one camera with 10 images (50 x 20 + 22 x 10 = 1,220). So indices 1-10 are the first camera and
11-20 the second (``images_per_camera=10``); set ``images_per_camera=5`` for the 1-5 / 6-10
reading given in some notes (it cannot produce 1,220 images). The protocol uses the 50
two-camera persons, 25/25; the LR camera supplies the queries and nothing is down-sampled. The
cache holds the manifest only: images are read in place.
"""
import glob
import os
import re
import statistics

from PIL import Image

from direid_plugin.data.datasets.protocol_cache import RawDataError, load_or_build, require_path
from direid_plugin.data.datasets.splits import SplitProtocolDataset, identity_splits

LAYOUT = "<root>/caviar4reid/PPPPIII.jpg (CAVIAR4REID.zip extracted flat: 4-digit person id, 3-digit image index)"
CAVIAR_NAME = re.compile(r"^(\d{4})(\d{3})\.jpe?g$", re.IGNORECASE)


def parse_caviar_name(path, images_per_camera=10):
    """``(pid, camid)`` of a ``PPPPIII.jpg`` file: images 1..n are camera 0, n+1..2n camera 1."""
    match = CAVIAR_NAME.match(os.path.basename(path))
    if match is None:
        raise RawDataError(f"{path}: file name is not PPPPIII.jpg; expected layout: {LAYOUT}")
    pid, index = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= 2 * images_per_camera:
        raise RawDataError(f"{path}: image index {index} is outside 1..{2 * images_per_camera} "
                           f"({images_per_camera} images per camera)")
    return pid, (index - 1) // images_per_camera


def list_caviar(folder, images_per_camera=10):
    """``[(path, pid, camid)]`` of every image in a flat CAVIAR4REID folder, sorted by path."""
    items = [(path, *parse_caviar_name(path, images_per_camera)) for path in sorted(glob.glob(os.path.join(folder, "*.jp*g")))]
    if not items:
        raise RawDataError(f"{folder} holds no .jpg images; expected layout: {LAYOUT}")
    return items


def smaller_camera(items):
    """The camid whose images have the smaller median area (w x h): the LR camera."""
    areas = {}
    for path, _, camid in items:
        with Image.open(path) as img:  # reads the header only
            areas.setdefault(camid, []).append(img.width * img.height)
    return min(areas, key=lambda camid: statistics.median(areas[camid]))


class CAVIAR(SplitProtocolDataset):
    """CAVIAR4REID: 10 seeded splits of the two-camera persons into halves; query = LR camera.

    Args:
        lr_camid: the LR (query) camera; None picks the camera with the smaller median image
            area, and the manifest records the choice.
        images_per_camera: see the module doc.
        seed, num_splits, build_cache: as for ``MLRViper``.
    """

    def __init__(self, root="", split_id=0, seed=0, lr_camid=None, images_per_camera=10, num_splits=10,
                 build_cache=True, **kwargs):
        if lr_camid not in (None, 0, 1):
            raise ValueError(f"lr_camid must be None (auto), 0 or 1, got {lr_camid!r}")
        raw_dir = require_path(os.path.join(os.path.abspath(os.path.expanduser(root)), "caviar4reid"), LAYOUT)
        items = list_caviar(raw_dir, images_per_camera)
        cameras = {}
        for _, pid, camid in items:
            cameras.setdefault(pid, set()).add(camid)
        both = sorted(pid for pid, cams in cameras.items() if len(cams) == 2)
        if len(both) < 2:
            raise RawDataError(f"{raw_dir}: {len(both)} persons appear in both cameras; the protocol needs at least 2 "
                               f"(CAVIAR4REID has 50); expected layout: {LAYOUT}")
        protocol = [item for item in items if item[1] in both]

        def build(tmp):
            lr = smaller_camera(protocol) if lr_camid is None else lr_camid
            return {
                "images": [list(item) for item in protocol],
                "lr_camids": [lr],
                "splits": identity_splits(both, len(both) // 2, num_splits, seed),
            }

        params = {"dataset": "caviar", "raw_dir": raw_dir, "seed": seed, "lr_camid": lr_camid,
                  "images_per_camera": images_per_camera, "num_splits": num_splits}
        folder, record = load_or_build("caviar", params, [path for path, _, _ in items], build, allow_build=build_cache)
        super().__init__(folder, record, split_id, **kwargs)
