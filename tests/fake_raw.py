"""Tiny raw datasets in the real on-disk formats, for testing loaders without the real data."""
import os

import h5py
import numpy as np
from PIL import Image


def random_image(rng, width, height):
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def write_viper_tree(root, num_ids, seed=0, size=(16, 32)):
    """``<root>/viper/VIPeR/{cam_a,cam_b}/<pid>_<angle>.bmp`` with ``num_ids`` identities."""
    rng = np.random.default_rng(seed)
    for camera, angle in (("cam_a", 0), ("cam_b", 90)):
        folder = os.path.join(root, "viper", "VIPeR", camera)
        os.makedirs(folder, exist_ok=True)
        for pid in range(num_ids):
            random_image(rng, *size).save(os.path.join(folder, f"{pid:03d}_{angle}.bmp"))
    return root


def write_cuhk03_mat(path, persons_per_pair, missing=(), seed=0, size=(8, 20)):
    """A cuhk-03.mat in the release's HDF5 layout (MATLAB stores arrays transposed).

    ``labeled`` and ``detected`` are 1 x pairs cells of persons x 10 cells of (H, W, 3) images;
    ``missing`` holds ``(pair, person, index)`` cells written empty, as MATLAB does. Returns
    ``{(kind, pair, person, index): image array}`` of the images written.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    written = {}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as mat:
        refs = mat.create_group("#refs#")
        for kind in ("labeled", "detected"):
            pair_refs = []
            for pair, persons in enumerate(persons_per_pair):
                cells = np.empty((10, persons), dtype=h5py.ref_dtype)
                for person in range(persons):
                    for index in range(10):
                        name = f"{kind}_{pair}_{person}_{index}"
                        if (pair, person, index) in missing:
                            cells[index, person] = refs.create_dataset(name, data=np.zeros(2, dtype=np.uint64)).ref
                            continue
                        img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                        written[(kind, pair, person, index)] = img
                        cells[index, person] = refs.create_dataset(name, data=img.T).ref
                pair_refs.append(refs.create_dataset(f"{kind}_pair{pair}", data=cells).ref)
            mat.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))
    return written


def write_official_folder(root, subsets, seed=0):
    """``<root>/MLR_CUHK03/<subset>/<pid>/<pid:05d>_c<cam>_<idx:05d>.jpg`` from ``{subset: {pid: [cams]}}``."""
    rng = np.random.default_rng(seed)
    for subset, identities in subsets.items():
        for pid, cams in identities.items():
            folder = os.path.join(root, "MLR_CUHK03", subset, f"{pid:04d}")
            os.makedirs(folder, exist_ok=True)
            for idx, cam in enumerate(cams):
                random_image(rng, 8, 16).save(os.path.join(folder, f"{pid:05d}_c{cam}_{idx:05d}.jpg"))
    return os.path.join(root, "MLR_CUHK03")


def write_caviar_tree(root, two_camera_ids, one_camera_ids, seed=0):
    """``<root>/caviar4reid/PPPPIII.jpg``: images 1-10 camera 0 (large), 11-20 camera 1 (small)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "caviar4reid")
    os.makedirs(folder, exist_ok=True)
    for pid in list(two_camera_ids) + list(one_camera_ids):
        indices = range(1, 21) if pid in two_camera_ids else range(1, 11)
        for index in indices:
            size = (40, 100) if index <= 10 else (20, 50)
            random_image(rng, *size).save(os.path.join(folder, f"{pid:04d}{index:03d}.jpg"))
    return folder
