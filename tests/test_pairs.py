"""Stage-1 pair data: aligned self-degradation pairs, real LR partners, seeding, endless loading."""
import glob
import os

import numpy as np
import pytest
import torch

from direid_plugin.config import get_default_config
from direid_plugin.data.datasets.synthetic import HR_CAMID, LR_CAMID, SyntheticMLR
from direid_plugin.data.degradations import build_degradation, downsample
from direid_plugin.data.image_io import read_image
from direid_plugin.data.pairs import DegradationPairs, PairLoader, build_pair_loader, pair_transform

H, W = 64, 32


@pytest.fixture
def synthetic_train(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path))
    ds = SyntheticMLR(num_train_ids=6, num_test_ids=2, images_per_camera=2, height=H, width=W, verbose=False)
    return ds.train, ds.lr_camids


@pytest.fixture
def viper_train(viper_root):
    """Forty VIPeR identities as an unpaired train list: cam_a is camera 0, cam_b camera 1."""
    items = []
    for camid, cam in enumerate(("cam_a", "cam_b")):
        for path in sorted(glob.glob(os.path.join(viper_root, "VIPeR", cam, "*.bmp")))[:40]:
            items.append((path, int(os.path.basename(path)[:3]), camid, 0))
    pid2label = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _, _ in items}))}
    return [(path, pid2label[pid], camid, dsetid) for path, pid, camid, dsetid in items]


def _degrade(kinds=("resolution",), p=0.5):
    node = get_default_config().degradation
    node.kinds = list(kinds)
    node.compose_p = p
    return build_degradation(node)


def test_hr_and_deg_are_pixel_aligned_views_of_one_image(synthetic_train):
    train, lr_camids = synthetic_train
    pairs = DegradationPairs(train, _degrade(), lr_camids, height=H, width=W, seed=3)
    camid_of = {path: camid for path, _, camid, _ in train}
    pid_of = {path: pid for path, pid, _, _ in train}
    transform = pair_transform(H, W)
    for index in (0, 2, 5, len(pairs) - 1):
        item = pairs[index]
        assert item["hr"].shape == item["deg"].shape == item["lr"].shape == (3, H, W)
        factor = item["deg_params"]["resolution.factor"]
        assert 2.0 <= factor <= 4.0 and item["deg_severity"] == pytest.approx(1 - 1 / factor)
        # deg is exactly the HR image down-sampled by the reported factor: same content, same pixels.
        expected = transform(downsample(read_image(item["hr_path"]), factor))
        assert torch.equal(item["deg"], expected)
        assert torch.equal(item["hr"], transform(read_image(item["hr_path"])))
        assert camid_of[item["hr_path"]] == HR_CAMID and camid_of[item["lr_path"]] == LR_CAMID
        assert item["hr_pid"] == pid_of[item["hr_path"]] and item["lr_pid"] == pid_of[item["lr_path"]]
        # Item i is the HR side when it is an HR image, else the LR side.
        own = train[index][0]
        assert own == (item["hr_path"] if train[index][2] == HR_CAMID else item["lr_path"])


def test_lr_partners_are_uniform_over_the_lr_camera(synthetic_train):
    train, lr_camids = synthetic_train
    pairs = DegradationPairs(train, _degrade(), lr_camids, height=H, width=W)
    hr_index = next(i for i, item in enumerate(train) if item[2] == HR_CAMID)
    lr_paths = {path for path, _, camid, _ in train if camid == LR_CAMID}
    seen = []
    for epoch in range(200):
        pairs.set_epoch(epoch)
        seen.append(pairs._partners(hr_index, np.random.default_rng([0, epoch, hr_index]))[1])
    counts = np.bincount(seen, minlength=len(train))
    assert {train[i][0] for i in np.flatnonzero(counts)} == lr_paths  # every LR image, only LR images
    assert counts.max() < 4 * 200 / len(lr_paths)


def test_same_seed_same_items_and_epochs_differ(synthetic_train):
    train, lr_camids = synthetic_train
    degrade = _degrade(("resolution", "illumination", "gaussian_noise"))
    a = DegradationPairs(train, degrade, lr_camids, height=H, width=W, seed=1)
    b = DegradationPairs(train, degrade, lr_camids, height=H, width=W, seed=1)
    c = DegradationPairs(train, degrade, lr_camids, height=H, width=W, seed=2)
    for index in range(0, len(a), 5):
        x, y, z = a[index], b[index], c[index]
        assert torch.equal(x["deg"], y["deg"]) and x["lr_path"] == y["lr_path"] and x["deg_params"] == y["deg_params"]
        assert not torch.equal(x["deg"], z["deg"])
    first = [a[i]["lr_path"] for i in range(len(a))]
    a.set_epoch(1)
    assert [a[i]["lr_path"] for i in range(len(a))] != first


def test_unpaired_partner_comes_from_another_camera(viper_train):
    pairs = DegradationPairs(viper_train, _degrade(("illumination",)), lr_camids=(), height=H, width=W)
    camid_of = {path: camid for path, _, camid, _ in viper_train}
    for index in range(0, len(pairs), 7):
        item = pairs[index]
        assert item["hr_path"] == viper_train[index][0]
        assert camid_of[item["lr_path"]] != viper_train[index][2]
        # Illumination darkens the real image: the degraded copy has a lower mean in pixel space.
        assert item["deg"].mean() < item["hr"].mean()


def test_bad_camera_settings_are_explained(synthetic_train, viper_train):
    train, _ = synthetic_train
    with pytest.raises(ValueError, match=r"lr_camids=\[5\].*no LR"):
        DegradationPairs(train, _degrade(), lr_camids=(5,))
    one_camera = [item for item in viper_train if item[2] == 0]
    with pytest.raises(ValueError, match="two cameras"):
        DegradationPairs(one_camera, _degrade(), lr_camids=())


def test_loader_is_endless_reproducible_and_worker_independent(synthetic_train):
    train, lr_camids = synthetic_train
    batches = lambda loader, n: [b for _, b in zip(range(n), loader)]  # noqa: E731
    loader = build_pair_loader(train, _degrade(), lr_camids, height=H, width=W, batch_size=5, seed=4)
    assert len(loader) == len(train) // 5 == 4
    run = batches(loader, 9)  # crosses two epoch boundaries
    assert loader.epoch == 2
    assert all(b["hr"].shape == (5, 3, H, W) and b["deg_severity"].dtype == torch.float64 for b in run)
    assert run[0]["deg_params"]["resolution.factor"].shape == (5,)
    epoch0 = [p for b in run[:4] for p in b["hr_path"] + b["lr_path"]]
    epoch1 = [p for b in run[4:8] for p in b["hr_path"] + b["lr_path"]]
    assert epoch0 != epoch1
    # Same seed, two workers: the same stream.
    again = build_pair_loader(train, _degrade(), lr_camids, height=H, width=W, batch_size=5, seed=4, workers=2)
    for x, y in zip(run, batches(again, 9)):
        assert x["hr_path"] == y["hr_path"] and torch.equal(x["deg"], y["deg"]) and torch.equal(x["lr"], y["lr"])
    # A resumed loader continues the stream from its epoch.
    resumed = PairLoader(DegradationPairs(train, _degrade(), lr_camids, H, W, seed=4), batch_size=5, seed=4)
    resumed.set_epoch(1)
    assert [p for b in batches(resumed, 4) for p in b["hr_path"] + b["lr_path"]] == epoch1
    # Mid-epoch resume: the batch that would have come next.
    resumed.set_position(1, 2)
    assert next(iter(resumed))["hr_path"] == run[6]["hr_path"] and resumed.position() == (1, 3)


def test_loader_rejects_a_batch_larger_than_the_data(synthetic_train):
    train, lr_camids = synthetic_train
    with pytest.raises(ValueError, match="batch"):
        build_pair_loader(train, _degrade(), lr_camids, batch_size=len(train) + 1)
