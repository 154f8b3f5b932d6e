"""Degraded Re-ID datasets: MLR-VIPeR on the real VIPeR, MLR-CUHK03 (.mat and official folder),
CAVIAR, and the mlr_/lowlight_ wrappers of torchreid datasets."""
import json
import os
import shutil

import numpy as np
import pytest
import torchreid
from conftest import shared_path
from fake_raw import write_caviar_tree, write_cuhk03_mat, write_official_folder, write_viper_tree
from PIL import Image

from direid_plugin.data.datasets import DATASETS, VALIDATION_IDS, validation_name
from direid_plugin.data.datasets.caviar import CAVIAR, list_caviar, parse_caviar_name
from direid_plugin.data.datasets.mlr_cuhk03 import MLRCUHK03, MLRCUHK03Folder
from direid_plugin.data.datasets.mlr_viper import MLRViper
from direid_plugin.data.datasets.protocol_cache import RawDataError
from direid_plugin.data.datasets.wrappers import DegradedCameraDataset
from direid_plugin.data.degradations import downsample
from direid_plugin.data.image_io import read_image
from direid_plugin.data.manifest import MANIFEST, ManifestError
from direid_plugin.registry import dataset_registry


def pixels(path):
    return np.asarray(read_image(path), dtype=np.int16)


def high_frequency_energy(arr):
    """Mean squared difference between horizontal and vertical neighbours."""
    arr = arr.astype(np.float64)
    return float((np.diff(arr, axis=0) ** 2).mean() + (np.diff(arr, axis=1) ** 2).mean())


def viper_pid(path):
    return int(os.path.basename(path).split("_")[0])


@pytest.fixture(scope="session")
def shared_root():
    """The shared data root (holding viper/VIPeR), as ImageDataManager's ``root``."""
    return os.path.dirname(os.path.dirname(shared_path("viper", "VIPeR")))


@pytest.fixture(scope="session")
def viper_cache(shared_root, tmp_path_factory):
    """A cache root with MLR-VIPeR built once for the session."""
    cache = str(tmp_path_factory.mktemp("viper-cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIREID_CACHE", cache)
        MLRViper(root=shared_root, verbose=False)
    return cache


@pytest.fixture
def mlr_viper(viper_cache, shared_root, monkeypatch):
    """``mlr_viper(**kw)`` builds MLRViper on the real VIPeR against the session cache."""
    monkeypatch.setenv("DIREID_CACHE", viper_cache)
    return lambda **kw: MLRViper(root=shared_root, verbose=False, **kw)


# ---------------------------------------------------------------------------------- MLR-VIPeR


def test_mlr_viper_ten_splits_316_316_disjoint_and_distinct(mlr_viper):
    test_sets = []
    for split_id in range(10):
        ds = mlr_viper(split_id=split_id)
        assert (len(ds.train), len(ds.query), len(ds.gallery)) == (632, 316, 316)
        assert ds.num_train_pids == 316 and sorted({pid for _, pid, _, _ in ds.train}) == list(range(316))
        train_raw = {viper_pid(path) for path, _, _, _ in ds.train}
        query_pids = [pid for _, pid, _, _ in ds.query]
        gallery_pids = [pid for _, pid, _, _ in ds.gallery]
        assert len(set(query_pids)) == 316 and set(query_pids) == set(gallery_pids)
        assert not train_raw & set(query_pids)
        assert {camid for _, _, camid, _ in ds.query} == {1} and {camid for _, _, camid, _ in ds.gallery} == {0}
        assert all(path.startswith(ds.cache_dir) for path, _, _, _ in ds.query)
        assert all("/VIPeR/cam_a/" in path and viper_pid(path) == pid for path, pid, _, _ in ds.gallery)
        # every train identity brings its HR (raw cam_a) and LR (cached cam_b) image
        cams = {}
        for path, label, camid, _ in ds.train:
            cams.setdefault(label, []).append((camid, path.startswith(ds.cache_dir)))
        assert all(sorted(v) == [(0, False), (1, True)] for v in cams.values())
        test_sets.append(frozenset(query_pids))
    assert len(set(test_sets)) == 10
    with pytest.raises(ValueError, match="split_id=10"):
        mlr_viper(split_id=10)


def test_mlr_viper_lr_images_are_downsampled_by_the_recorded_factor(mlr_viper):
    ds = mlr_viper()
    degraded = ds.manifest["degraded"]
    assert len(degraded) == 632
    factors = [entry["factor"] for entry in degraded.values()]
    assert set(factors) == {2, 3, 4} and min(factors.count(f) for f in (2, 3, 4)) > 150
    lower = 0
    for rel, entry in degraded.items():
        assert "/cam_b/" in entry["source"]
        lr, hr = pixels(os.path.join(ds.cache_dir, rel)), pixels(entry["source"])
        assert lr.shape == hr.shape == (128, 48, 3)
        redone = np.asarray(downsample(read_image(entry["source"]), entry["factor"]), dtype=np.int16)
        assert np.array_equal(redone, lr)
        lower += high_frequency_energy(lr) < high_frequency_energy(hr)
    assert lower == 632
    # a stronger factor removes more detail, on average
    energy = {f: np.mean([high_frequency_energy(pixels(os.path.join(ds.cache_dir, r))) for r, e in degraded.items()
                          if e["factor"] == f]) for f in (2, 3, 4)}
    assert energy[2] > energy[3] > energy[4]


def test_mlr_viper_builds_are_deterministic_and_seeded(mlr_viper, shared_root, tmp_path, monkeypatch):
    with open(os.path.join(mlr_viper(build_cache=False).cache_dir, MANIFEST)) as f:
        first = json.load(f)
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "again"))
    again = MLRViper(root=shared_root, verbose=False)
    with open(os.path.join(again.cache_dir, MANIFEST)) as f:
        assert json.load(f) == first
    other = MLRViper(root=shared_root, seed=1, verbose=False)
    assert other.cache_dir != again.cache_dir
    assert other.manifest["splits"] != first["splits"]
    assert [e["factor"] for e in other.manifest["degraded"].values()] != [e["factor"] for e in first["degraded"].values()]


@pytest.mark.parametrize("damage", ["modify_lr_file", "delete_lr_file", "edit_factor", "edit_split"])
def test_mlr_viper_damaged_cache_raises(damage, viper_cache, shared_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(viper_cache, cache)
    monkeypatch.setenv("DIREID_CACHE", str(cache))
    folder = MLRViper(root=shared_root, verbose=False).cache_dir
    manifest_path = os.path.join(folder, MANIFEST)
    with open(manifest_path) as f:
        record = json.load(f)
    rel = sorted(record["degraded"])[5]
    if damage == "modify_lr_file":
        Image.new("RGB", (48, 128)).save(os.path.join(folder, rel))
    elif damage == "delete_lr_file":
        os.remove(os.path.join(folder, rel))
    else:
        if damage == "edit_factor":
            record["degraded"][rel]["factor"] = {2: 3, 3: 4, 4: 2}[record["degraded"][rel]["factor"]]
        else:
            record["splits"][0]["test"][0], record["splits"][0]["train"][0] = (
                record["splits"][0]["train"][0], record["splits"][0]["test"][0])
        with open(manifest_path, "w") as f:
            json.dump(record, f)
    expected = MANIFEST if damage.startswith("edit") else os.path.basename(rel)
    with pytest.raises(ManifestError, match=expected):
        MLRViper(root=shared_root, verbose=False)


def test_changed_or_missing_raw_data_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    root = write_viper_tree(str(tmp_path / "raw"), num_ids=8)
    ds = MLRViper(root=root, verbose=False)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (8, 4, 4)
    changed = os.path.join(root, "viper", "VIPeR", "cam_a", "003_0.bmp")
    Image.new("RGB", (16, 32), "white").save(changed)
    os.utime(changed, ns=(1, 1))
    with pytest.raises(ManifestError, match="raw data .* changed"):
        MLRViper(root=root, verbose=False)
    with pytest.raises(RawDataError, match=r"nowhere/viper/VIPeR/cam_a not found; expected layout: <root>/viper/VIPeR"):
        MLRViper(root=str(tmp_path / "nowhere"))


def test_mlr_viper_through_torchreid_image_data_manager(viper_cache, shared_root, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", viper_cache)
    dm = torchreid.reid.data.ImageDataManager(
        sources="mlr_viper", root=shared_root, height=64, width=32, batch_size_train=8, batch_size_test=8,
        use_gpu=False, workers=0,
    )
    assert dm.num_train_pids == 316
    loaders = dm.test_loader["mlr_viper"]
    query, gallery = loaders["query"].dataset, loaders["gallery"].dataset
    assert (len(query), len(gallery)) == (316, 316)
    assert isinstance(query, MLRViper) and query.lr_camids == {1}
    assert {item[2] for item in query.data} == {1} and {item[2] for item in gallery.data} == {0}
    batch = next(iter(dm.train_loader))
    assert tuple(batch["img"].shape) == (8, 3, 64, 32) and int(batch["pid"].max()) < 316


def test_mlr_viper_validation_variants_hold_out_training_identities(mlr_viper, shared_root):
    held_per_split = []
    for split_id in (0, 1):
        full = mlr_viper(split_id=split_id)
        val = DATASETS["mlr_viper_val"](root=shared_root, split_id=split_id, verbose=False)
        full_train = {viper_pid(path) for path, _, _, _ in full.train}
        full_test = {pid for _, pid, _, _ in full.query}
        held = {pid for _, pid, _, _ in val.query}
        assert len(held) == len(val.query) == len(val.gallery) == VALIDATION_IDS
        assert {pid for _, pid, _, _ in val.gallery} == held
        assert held <= full_train and not held & full_test  # the split's test identities stay unseen
        assert {viper_pid(path) for path, _, _, _ in val.train} == full_train - held
        assert val.num_train_pids == 316 - VALIDATION_IDS and len(val.train) == 2 * val.num_train_pids
        assert {c for _, _, c, _ in val.query} == {1} and all(p.startswith(val.cache_dir) for p, _, _, _ in val.query)
        assert {c for _, _, c, _ in val.gallery} == {0}
        clean = DATASETS["mlr_viper_clean_val"](root=shared_root, split_id=split_id, verbose=False)
        assert clean.train == val.train and clean.gallery == val.gallery
        assert [q[1] for q in clean.query] == [q[1] for q in val.query]
        assert all("/VIPeR/cam_b/" in path and viper_pid(path) == pid for path, pid, _, _ in clean.query)
        again = DATASETS["mlr_viper_val"](root=shared_root, split_id=split_id, verbose=False)
        assert again.query == val.query and again.train == val.train
        held_per_split.append(held)
    assert held_per_split[0] != held_per_split[1]
    with pytest.raises(ValueError, match="validation_ids=400: split 0 has 316 training identities"):
        mlr_viper(validation_ids=400)


def test_validation_variants_are_registered_for_the_split_protocols():
    registry = dataset_registry()
    for name in ("mlr_viper", "mlr_viper_clean", "mlr_cuhk03"):
        assert validation_name(name) == f"{name}_val" and registry[f"{name}_val"] is DATASETS[f"{name}_val"]
    with pytest.raises(ValueError, match="'synthetic_mlr' has no validation variant.*'mlr_viper_val'"):
        validation_name("synthetic_mlr")


# -------------------------------------------------------------------------------- MLR-CUHK03


def test_mlr_cuhk03_from_generated_mat(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    mat_path = tmp_path / "raw" / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    # pair 0: 3 persons, pair 1: 2 persons (pids 3, 4); pid 1 has no second-camera view; pid 3 lacks image 2
    missing = {(0, 1, i) for i in range(5, 10)} | {(1, 0, 1)}
    written = write_cuhk03_mat(str(mat_path), persons_per_pair=[3, 2], missing=missing)
    root = str(tmp_path / "raw")
    ds = MLRCUHK03(root=root, num_test_ids=2, cuhk03_labeled=True, verbose=False)
    images = ds.manifest["images"]
    assert len(images) == 5 * 10 - len(missing)
    assert sorted({pid for _, pid, _ in images}) == [0, 1, 2, 3, 4]
    for split in ds.manifest["splits"]:
        assert len(split["test"]) == 2 and 1 not in split["test"]  # pid 1 cannot be queried
        assert sorted(split["train"] + split["test"]) == [0, 1, 2, 3, 4]
    test = ds.manifest["splits"][0]["test"]
    assert sorted({pid for _, pid, _, _ in ds.query}) == test == sorted({pid for _, pid, _, _ in ds.gallery})
    assert {c for _, _, c, _ in ds.query} == {1} and {c for _, _, c, _ in ds.gallery} == {0}
    assert len(ds.query) == sum(1 for _, pid, c in images if pid in test and c == 1)
    assert ds.num_train_pids == 3 and len(ds.train) == sum(1 for _, pid, _ in images if pid not in test)
    # HR images are the .mat arrays (H x W x 3, not transposed); LR ones are them down-sampled
    pair_person = {0: (0, 0), 1: (0, 1), 2: (0, 2), 3: (1, 0), 4: (1, 1)}
    for rel, pid, camid in images:
        index = int(os.path.basename(rel)[8:10]) - 1
        original = written[("labeled", *pair_person[pid], index)]
        saved = pixels(os.path.join(ds.cache_dir, rel))
        assert camid == index // 5
        if camid == 0:
            assert saved.shape == (20, 8, 3) and np.array_equal(saved, original)
        else:
            factor = ds.manifest["degraded"][rel]["factor"]
            assert np.array_equal(saved, np.asarray(downsample(Image.fromarray(original), factor)))
    detected = MLRCUHK03(root=root, num_test_ids=2, verbose=False)
    assert detected.cache_dir != ds.cache_dir
    first_hr = next(rel for rel, _, camid in images if camid == 0)
    assert not np.array_equal(pixels(os.path.join(detected.cache_dir, first_hr)), pixels(os.path.join(ds.cache_dir, first_hr)))
    with pytest.raises(ValueError, match="cannot draw 5 test identities"):
        MLRCUHK03(root=root, num_test_ids=5, verbose=False)
    with pytest.raises(RawDataError, match=r"cuhk-03.mat not found; expected layout: <root>/cuhk03/cuhk03_release"):
        MLRCUHK03(root=str(tmp_path / "nowhere"))


def test_mlr_cuhk03_official_folder_layout(tmp_path):
    write_official_folder(str(tmp_path), {
        "train": {20: [0, 0, 1], 7: [1, 0], 31: [0, 1]},
        "query": {3: [0, 0], 5: [0]},
        "gallery": {3: [1, 1], 5: [1], 9: [1]},
    })
    ds = MLRCUHK03Folder(root=str(tmp_path), verbose=False)
    assert ds.num_train_pids == 3 and len(ds.train) == 7
    assert sorted((os.path.basename(p)[:5], label) for p, label, _, _ in ds.train)[::3] == [("00007", 0), ("00020", 1), ("00031", 2)]
    assert [(pid, camid) for _, pid, camid, _ in ds.query] == [(3, 0), (3, 0), (5, 0)]
    assert sorted((pid, camid) for _, pid, camid, _ in ds.gallery) == [(3, 1), (3, 1), (5, 1), (9, 1)]
    assert ds.lr_camids == {0}
    with pytest.raises(ValueError, match="split_id=0"):
        MLRCUHK03Folder(root=str(tmp_path), split_id=1)
    misplaced = tmp_path / "MLR_CUHK03" / "query" / "0005" / "00006_c0_00001.jpg"
    shutil.copy(tmp_path / "MLR_CUHK03" / "query" / "0005" / "00005_c0_00000.jpg", misplaced)
    with pytest.raises(RawDataError, match="says pid 6 but it lies in identity folder '0005'"):
        MLRCUHK03Folder(root=str(tmp_path))
    os.rename(misplaced, misplaced.with_name("person6.jpg"))
    with pytest.raises(RawDataError, match="person6.jpg: file name is not <5-digit pid>_c<cam>"):
        MLRCUHK03Folder(root=str(tmp_path))
    with pytest.raises(RawDataError, match="MLR_CUHK03/train not found; expected layout"):
        MLRCUHK03Folder(root=str(tmp_path / "nowhere"))


# ------------------------------------------------------------------------------------ CAVIAR


def test_caviar_name_parsing_on_the_real_sample(caviar_root):
    items = list_caviar(caviar_root)
    assert [(os.path.basename(p), pid, camid) for p, pid, camid in items] == (
        [(f"0001{i:03d}.jpg", 1, 0) for i in range(7, 11)] + [(f"0002{i:03d}.jpg", 2, 0) for i in range(1, 5)]
    )
    # the alternative 5-per-camera reading puts person 1's images 7-10 on the second camera
    assert {(pid, camid) for _, pid, camid in list_caviar(caviar_root, images_per_camera=5)} == {(1, 1), (2, 0)}
    assert parse_caviar_name("0072020.jpg") == (72, 1)
    with pytest.raises(RawDataError, match="image index 21 is outside 1..20"):
        parse_caviar_name("0001021.jpg")
    with pytest.raises(RawDataError, match="not PPPPIII.jpg"):
        parse_caviar_name("person1.jpg")


def test_caviar_on_the_real_sample_has_no_two_camera_person(caviar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    os.symlink(caviar_root, tmp_path / "caviar4reid")
    with pytest.raises(RawDataError, match="0 persons appear in both cameras"):
        CAVIAR(root=str(tmp_path))


def test_caviar_splits_on_a_generated_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    write_caviar_tree(str(tmp_path), two_camera_ids=range(1, 7), one_camera_ids=[7, 8])
    ds = CAVIAR(root=str(tmp_path), verbose=False)
    assert ds.manifest["lr_camids"] == [1]  # camera 1's images are the small ones
    assert len(ds.manifest["splits"]) == 10
    for split_id, split in enumerate(ds.manifest["splits"]):
        assert len(split["train"]) == len(split["test"]) == 3
        assert sorted(split["train"] + split["test"]) == [1, 2, 3, 4, 5, 6]  # one-camera persons 7, 8 left out
        s = CAVIAR(root=str(tmp_path), split_id=split_id, verbose=False)
        assert (len(s.train), len(s.query), len(s.gallery), s.num_train_pids) == (60, 30, 30, 3)
        assert {pid for _, pid, _, _ in s.query} == set(split["test"])
        assert {c for _, _, c, _ in s.query} == {1} and {c for _, _, c, _ in s.gallery} == {0}
        assert all(Image.open(p).size == (20, 50) for p, _, _, _ in s.query)  # genuinely LR, untouched
    assert len({tuple(s["test"]) for s in ds.manifest["splits"]}) > 1
    forced = CAVIAR(root=str(tmp_path), lr_camid=0, verbose=False)
    assert {c for _, _, c, _ in forced.query} == {0}


# ---------------------------------------------------------------------------------- wrappers


@pytest.fixture
def viper_link_root(shared_root, tmp_path):
    """A root whose viper/VIPeR links to the real data: torchreid's VIPeR writes splits.json beside it."""
    (tmp_path / "root" / "viper").mkdir(parents=True)
    os.symlink(os.path.join(shared_root, "viper", "VIPeR"), tmp_path / "root" / "viper" / "VIPeR")
    return str(tmp_path / "root")


def test_wrapper_names_in_the_registry():
    registry = dataset_registry()
    assert registry["mlr_viper"] is MLRViper and registry["mlr_cuhk03"] is MLRCUHK03
    for name, base, kind in [("mlr_wrap_viper", "viper", "mlr"), ("mlr_market1501", "market1501", "mlr"),
                             ("lowlight_msmt17", "msmt17", "lowlight"), ("mlr_wrap_cuhk03", "cuhk03", "mlr")]:
        entry = registry[name]
        assert entry.func is DegradedCameraDataset and entry.keywords == {"base": base, "degradation": kind}
        assert DATASETS[name] is entry
        queries = registry[f"{kind}_queries_{base}"]
        assert queries.keywords == {"base": base, "degradation": kind, "queries_only": True}


def test_wrapper_missing_base_data_is_an_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RawDataError, match="market1501 not found; expected layout: torchreid's 'market1501' layout"):
        torchreid.reid.data.datasets.init_image_dataset("mlr_market1501", root=str(tmp_path))


def test_mlr_wrapper_on_stock_viper(viper_link_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    base = torchreid.reid.data.datasets.init_image_dataset("viper", root=viper_link_root, verbose=False)
    ds = torchreid.reid.data.datasets.init_image_dataset("mlr_wrap_viper", root=viper_link_root, verbose=False)
    # The LR camera is cam_a (camid 0, VIPeR's query camera): its train and query images are LR.
    assert ds.lr_camids == {0} and ds.gallery == base.gallery and len(ds.query) == 316
    sources = {entry["source"]: (rel, entry["factor"]) for rel, entry in ds.manifest["degraded"].items()}
    for (path, pid, camid, _), (src, src_pid, src_camid, _) in zip(ds.query + ds.train, base.query + base.train):
        assert (pid, camid) == (src_pid, src_camid)
        if camid == 1:
            assert path == src
            continue
        rel, factor = sources[src]
        assert path == os.path.join(ds.cache_dir, rel) and factor in (2, 3, 4)
        assert np.array_equal(pixels(path), np.asarray(downsample(read_image(src), factor), dtype=np.int16))
    assert len(sources) == 316 + 316 and set(f for _, f in sources.values()) == {2, 3, 4}
    # The query-only variant leaves train and gallery as they are and declares no LR camera.
    queries = torchreid.reid.data.datasets.init_image_dataset("mlr_queries_viper", root=viper_link_root, verbose=False)
    assert queries.train == base.train and queries.gallery == base.gallery and not queries.lr_camids
    assert all(p.startswith(queries.cache_dir) for p, _, _, _ in queries.query)


def test_lowlight_wrapper_darkens_queries(viper_link_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    ds = torchreid.reid.data.datasets.init_image_dataset("lowlight_viper", root=viper_link_root, verbose=False)
    assert len(ds.query) == 316 and all(p.startswith(ds.cache_dir) for p, _, _, _ in ds.query)
    ratios = []
    for rel, entry in ds.manifest["degraded"].items():
        assert 2.0 <= entry["gamma"] <= 3.5 and 0.75 <= entry["gain"] <= 1.0
        dark, clean = pixels(os.path.join(ds.cache_dir, rel)), pixels(entry["source"])
        assert dark.shape == clean.shape
        ratios.append(dark.mean() / clean.mean())
    assert max(ratios) < 1.0 and np.mean(ratios) < 0.6
