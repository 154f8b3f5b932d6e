"""MLR-VIPeR: VIPeR with one camera down-sampled (cross-resolution Re-ID, DI-REID Table 1).

Raw data is torchreid's VIPeR layout, read in place and never written to. The cache holds only
the down-sampled LR-camera images (PNG, original size) and the manifest; HR-camera images are
referenced at their raw paths. All 632 LR images are built once, whatever the split, so the 10
splits share one cache.
"""
import glob
import os

from direid_plugin.data.datasets.protocol_cache import RawDataError, load_or_build, require_path, write_degraded
from direid_plugin.data.datasets.splits import SplitProtocolDataset, identity_splits
from direid_plugin.data.degradations import MLR_FACTORS, mlr_downsample
from direid_plugin.data.image_io import read_image

CAMERAS = ("cam_a", "cam_b")
LAYOUT = "<root>/viper/VIPeR/{cam_a,cam_b}/<pid>_<angle>.bmp, one image per identity and camera (e.g. cam_a/000_45.bmp)"


def list_viper_camera(raw_dir, camera):
    """``{pid: path}`` for one VIPeR camera folder; the pid is the number before the first '_'."""
    folder = require_path(os.path.join(raw_dir, camera), LAYOUT)
    images = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.bmp"))):
        prefix = os.path.basename(path).split("_")[0]
        if not prefix.isdigit():
            raise RawDataError(f"{path}: cannot read the identity from the file name; expected layout: {LAYOUT}")
        pid = int(prefix)
        if pid in images:
            raise RawDataError(f"{path} and {images[pid]} have the same identity {pid}; expected layout: {LAYOUT}")
        images[pid] = path
    if not images:
        raise RawDataError(f"{folder} has no .bmp images; expected layout: {LAYOUT}")
    return images


class MLRViper(SplitProtocolDataset):
    """MLR-VIPeR: 10 seeded 316/316 identity splits; query = LR camera, gallery = HR camera.

    Args:
        root: data root holding ``viper/VIPeR/{cam_a,cam_b}``.
        split_id: which of the ``num_splits`` identity splits to use.
        seed: fixes the splits and the per-image down-sampling factors.
        lr_camera: the down-sampled camera, ``'cam_b'`` (camid 1) or ``'cam_a'`` (camid 0).
        build_cache: False only verifies an existing cache (``prepare_data --verify-only``).
        clean_queries: query with the LR camera's original images instead (same splits and
            training data): the clean-query control of a cross-resolution result.
    """

    def __init__(self, root="", split_id=0, seed=0, lr_camera="cam_b", num_splits=10, build_cache=True,
                 clean_queries=False, **kwargs):
        if lr_camera not in CAMERAS:
            raise ValueError(f"lr_camera must be one of {CAMERAS}, got {lr_camera!r}")
        raw_dir = os.path.join(os.path.abspath(os.path.expanduser(root)), "viper", "VIPeR")
        cameras = [list_viper_camera(raw_dir, camera) for camera in CAMERAS]
        if set(cameras[0]) != set(cameras[1]):
            only = sorted(set(cameras[0]) ^ set(cameras[1]))[:5]
            raise RawDataError(f"{raw_dir}: identities {only}... are in only one camera; expected layout: {LAYOUT}")
        pids = sorted(cameras[0])
        lr_camid = CAMERAS.index(lr_camera)

        def build(tmp):
            lr_paths = cameras[lr_camid]
            jobs = [
                (f"lr/{lr_camera}/{os.path.splitext(os.path.basename(lr_paths[pid]))[0]}.png", lr_paths[pid],
                 lambda path=lr_paths[pid]: read_image(path))
                for pid in pids
            ]
            degraded = write_degraded(tmp, jobs, seed, mlr_downsample)
            lr_rel = {pid: rel for pid, (rel, _, _) in zip(pids, jobs)}
            images = [
                [lr_rel[pid] if camid == lr_camid else cameras[camid][pid], pid, camid]
                for camid in range(len(CAMERAS))
                for pid in pids
            ]
            splits = identity_splits(pids, len(pids) // 2, num_splits, seed)
            return {"images": images, "lr_camids": [lr_camid], "splits": splits, "degraded": degraded}

        params = {"dataset": "mlr_viper", "raw_dir": raw_dir, "seed": seed, "lr_camera": lr_camera, "num_splits": num_splits,
                  "factors": list(MLR_FACTORS)}
        raw_paths = [path for camera in cameras for path in camera.values()]
        folder, record = load_or_build("mlr_viper", params, raw_paths, build, allow_build=build_cache)
        query_source = (lambda pid, camid: cameras[camid][pid]) if clean_queries else None
        super().__init__(folder, record, split_id, query_source=query_source, **kwargs)
