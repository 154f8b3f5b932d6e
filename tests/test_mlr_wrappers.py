"""``mlr_<name>`` / ``lowlight_<name>`` on a torchreid dataset other than VIPeR: a Market-1501
layout built from real VIPeR images, with queries from two cameras."""
import os

import numpy as np
import pytest
import torchreid
from PIL import Image

from direid_plugin.config import load_config
from direid_plugin.data.degradations import build_degradation
from direid_plugin.data.pairs import DegradationPairs
from direid_plugin.engines.ddgan_engine import train_lr_camids

TRAIN_IDS, TEST_IDS = range(1, 5), range(5, 9)


@pytest.fixture
def market_root(viper_root, tmp_path, monkeypatch):
    """torchreid's market1501 layout: identity i's VIPeR cam_a image is camera c1, its cam_b image c2.
    Test identities alternate their query camera; the gallery holds the other camera's image."""
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    cams = [sorted(os.listdir(os.path.join(viper_root, "VIPeR", cam)))[: len(TRAIN_IDS) + len(TEST_IDS)]
            for cam in ("cam_a", "cam_b")]
    base = tmp_path / "root" / "market1501" / "Market-1501-v15.09.15"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (base / folder).mkdir(parents=True)
    for pid in [*TRAIN_IDS, *TEST_IDS]:
        for cam, names in enumerate(cams, start=1):
            image = Image.open(os.path.join(viper_root, "VIPeR", ("cam_a", "cam_b")[cam - 1], names[pid - 1]))
            if pid in TRAIN_IDS:
                folder = "bounding_box_train"
            else:
                folder = "query" if cam == 1 + pid % 2 else "bounding_box_test"
            image.convert("RGB").save(base / folder / f"{pid:04d}_c{cam}s1_000001_00.jpg", quality=95)
    return str(tmp_path / "root")


def _dataset(name, root):
    return torchreid.reid.data.datasets.init_image_dataset(name, root=root, verbose=False)


def _degraded(items, dataset):
    return {camid for path, _, camid, _ in items if path.startswith(dataset.cache_dir)}


def test_mlr_wrapper_degrades_every_image_of_the_lr_camera(market_root):
    base, ds = _dataset("market1501", market_root), _dataset("mlr_market1501", market_root)
    assert sorted({c for _, _, c, _ in base.query}) == [0, 1] and ds.lr_camids == {0}
    for mine, theirs in ((ds.train, base.train), (ds.query, base.query), (ds.gallery, base.gallery)):
        assert [item[1:] for item in mine] == [item[1:] for item in theirs]
        assert _degraded(mine, ds) == {0}
        for (path, _, camid, _), (source, *_rest) in zip(mine, theirs):
            assert (path == source) == (camid != 0)
    for path, _, camid, _ in ds.train:  # camera c1 is down-sampled: less detail than its source
        if camid == 0:
            entry = ds.manifest["degraded"][os.path.relpath(path, ds.cache_dir)]
            assert entry["factor"] in (2, 3, 4) and Image.open(path).size == Image.open(entry["source"]).size
    # the same cache is found again, verified, not rebuilt
    assert _dataset("mlr_market1501", market_root).manifest == ds.manifest


def test_stage1_real_pairs_on_a_wrapped_dataset(market_root):
    cfg = load_config(None, [])
    datamanager = torchreid.data.ImageDataManager(root=market_root, sources="mlr_market1501", height=64, width=32,
                                                  use_gpu=False, workers=0, batch_size_train=4)
    lr_camids = train_lr_camids(datamanager, [])
    assert lr_camids == (0,)
    pairs = DegradationPairs(datamanager.train_loader.dataset.train, build_degradation(cfg.degradation), lr_camids,
                             height=64, width=32)
    cache_dir = os.environ["DIREID_CACHE"]
    for index in range(len(pairs)):
        item = pairs[index]
        assert item["lr_path"].startswith(cache_dir) and not item["hr_path"].startswith(cache_dir)


def test_query_only_and_lowlight_variants(market_root):
    base = _dataset("market1501", market_root)
    queries = _dataset("mlr_queries_market1501", market_root)
    assert queries.train == base.train and queries.gallery == base.gallery and not queries.lr_camids
    assert _degraded(queries.query, queries) == {0, 1}
    dark = _dataset("lowlight_market1501", market_root)
    assert dark.lr_camids == {0} and _degraded(dark.train + dark.query + dark.gallery, dark) == {0}
    for path, _, camid, _ in dark.query:
        source = path if camid else dark.manifest["degraded"][os.path.relpath(path, dark.cache_dir)]["source"]
        ratio = np.asarray(Image.open(path), dtype=float).mean() / np.asarray(Image.open(source), dtype=float).mean()
        assert (ratio < 0.9) == (camid == 0)
