"""Each torchreid 0.2.5 fix: the original failure is reproduced first, then the fix is checked."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchreid
from torchreid.reid.engine import ImageSoftmaxEngine
from torchreid.reid.utils import torchtools

import direid_plugin
from direid_plugin import compat
from direid_plugin.data.image_io import ImageReadError
from direid_plugin.engines.base import SoftmaxEngine


def _engine(dm, scheduler=True, engine_class=ImageSoftmaxEngine):
    model = torchreid.models.build_model("osnet_x0_25", dm.num_train_pids, pretrained=False, use_gpu=False)
    optimizer = torchreid.optim.build_optimizer(model, lr=1e-3)
    sched = torchreid.optim.build_lr_scheduler(optimizer, stepsize=5) if scheduler else None
    return engine_class(dm, model, optimizer=optimizer, scheduler=sched, use_gpu=False)


@pytest.mark.slow
def test_import_leaves_torchreid_engines_and_ranking_as_torchreid_ships_them():
    # A fresh interpreter: other tests of this session may have called install_fast_ranking().
    code = ("import direid_plugin; from torchreid.reid.engine.engine import Engine; from torchreid.reid.metrics import rank; "
            "print(Engine._evaluate.__module__, Engine.save_model.__module__, hasattr(rank, 'evaluate_cy'), rank.IS_CYTHON_AVAI); "
            "direid_plugin.install_fast_ranking(); print(rank.evaluate_cy.__module__, rank.IS_CYTHON_AVAI)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    engine_module = "torchreid.reid.engine.engine"
    # The registry package ships no compiled ranking: torchreid's python path, as without the plugin.
    assert out[0].split() == [engine_module, engine_module, "False", "False"]
    assert out[1].split() == ["direid_plugin.evaluation.ranking", "True"]
    # The plugin's behaviour is in its own subclasses (engines/base.py).
    assert issubclass(SoftmaxEngine, ImageSoftmaxEngine) and SoftmaxEngine._evaluate is not ImageSoftmaxEngine._evaluate


def test_torchreid_checkpoints_reload(pku_datamanager, tmp_path):
    engine = _engine(pku_datamanager)
    # torchreid's own save_model stores rank1 as a numpy scalar...
    engine.save_model(0, np.float32(0.5), str(tmp_path / "orig"))
    path = str(tmp_path / "orig" / "model" / "model.pth.tar-1")
    # ...which its own loader cannot read back on torch >= 2.6.
    with pytest.raises(pickle.UnpicklingError):
        compat.ORIGINALS["load_checkpoint"](path)
    # Fixed: torchreid's loader, resume and pretrained-weights paths all read it.
    assert torchtools.load_checkpoint(path)["rank1"] == pytest.approx(0.5)
    assert torchreid.utils.load_checkpoint(path)["epoch"] == 1
    fresh = _engine(pku_datamanager)
    torchtools.resume_from_checkpoint(path, fresh.model, fresh.optimizer, fresh.scheduler)
    torchtools.load_pretrained_weights(fresh.model, path)
    for key, value in engine.model.state_dict().items():
        assert torch.equal(value, fresh.model.state_dict()[key])


def test_plugin_engine_saves_without_scheduler(pku_datamanager, tmp_path):
    # torchreid's save_model calls .state_dict() on a None scheduler; the plugin's engines do not.
    with pytest.raises(AttributeError, match="state_dict"):
        _engine(pku_datamanager, scheduler=False).save_model(0, 0.1, str(tmp_path / "orig"))
    engine = _engine(pku_datamanager, scheduler=False, engine_class=SoftmaxEngine)
    engine.save_model(2, np.float64(0.25), str(tmp_path / "fixed"))
    state = torchreid.utils.load_checkpoint(str(tmp_path / "fixed" / "model" / "model.pth.tar-3"))
    assert "scheduler" not in state and state["epoch"] == 3 and isinstance(state["rank1"], float)
    fresh = _engine(pku_datamanager, scheduler=False)
    assert torchtools.resume_from_checkpoint(
        str(tmp_path / "fixed" / "model" / "model.pth.tar-3"), fresh.model, fresh.optimizer
    ) == 3


def test_ranks_beyond_cmc_length(pku_datamanager, capsys):
    query, gallery = pku_datamanager.test_loader["pku_reid"]["query"], pku_datamanager.test_loader["pku_reid"]["gallery"]
    kwargs = dict(dataset_name="pku_reid", query_loader=query, gallery_loader=gallery,
                  use_metric_cuhk03=True, ranks=[1, 5, 10, 20])
    # The cuhk03 metric's CMC has one entry per gallery identity (12 here): torchreid's rank 20 overflows.
    with pytest.raises(IndexError):
        _engine(pku_datamanager)._evaluate(**kwargs)
    engine = _engine(pku_datamanager, engine_class=SoftmaxEngine)
    rank1, mAP = engine._evaluate(**kwargs)
    out = capsys.readouterr().out
    assert "Rank-10" in out and "Rank-20" not in out and "exceed the CMC length 12" in out
    assert 0 <= rank1 <= 1 and engine.eval_results["pku_reid"]["rank10"] >= rank1


def test_stock_engine_trains_and_tests_on_a_plugin_dataset(mlr_root, tmp_path):
    """A user's stock torchreid script with a plugin dataset: nothing of the plugin in the engine."""
    dm = torchreid.data.ImageDataManager(root=str(mlr_root), sources="mlr_viper", height=64, width=32, use_gpu=False,
                                         workers=0, batch_size_train=4, batch_size_test=8)
    engine = _engine(dm)
    assert type(engine) is ImageSoftmaxEngine
    engine.run(save_dir=str(tmp_path / "log"), max_epoch=1, eval_freq=1, test_only=False, ranks=[1, 2])
    assert os.path.isfile(tmp_path / "log" / "model" / "model.pth.tar-1")


@pytest.mark.slow
def test_corrupt_image_gives_one_clear_error(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    # torchreid's read_image retries forever: still running after 5 s.
    code = f"import warnings; warnings.simplefilter('ignore'); from torchreid.reid.utils.tools import read_image; read_image({str(bad)!r})"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", code], timeout=5, capture_output=True)
    with pytest.raises(ImageReadError, match="broken.jpg"):
        torchreid.utils.read_image(str(bad))
    from torchreid.reid.data.datasets import dataset as dataset_module

    with pytest.raises(ImageReadError, match="broken.jpg"):
        dataset_module.read_image(str(bad))


def test_pretrained_without_cache_fails_fast_with_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(compat.ALLOW_DOWNLOAD_ENV, raising=False)
    expected = tmp_path / "checkpoints" / "osnet_x0_25_imagenet.pth"
    with pytest.raises(compat.PretrainedWeightsMissing, match=str(expected)):
        torchreid.models.build_model("osnet_x0_25", 10, pretrained=True, use_gpu=False)
    hub_file = os.path.join(torch.hub.get_dir(), "checkpoints")
    with pytest.raises(compat.PretrainedWeightsMissing, match=hub_file):
        torchreid.models.build_model("resnet18", 10, pretrained=True, use_gpu=False)


def test_pretrained_original_tries_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from torchreid.reid.models import resnet

    model = torchreid.models.build_model("resnet18", 10, pretrained=False, use_gpu=False)
    monkeypatch.setattr(resnet, "model_zoo", compat.ORIGINALS["resnet.model_zoo"])
    # Offline, the original path goes to the network and fails there (not with our message).
    with pytest.raises(Exception) as info:
        resnet.init_pretrained_weights(model, resnet.model_urls["resnet18"])
    assert not isinstance(info.value, compat.PretrainedWeightsMissing)


def test_pretrained_from_cache_loads(tmp_path, monkeypatch, osnet_msmt17_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    state = torch.load(osnet_msmt17_weights, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    torch.save(state, tmp_path / "checkpoints" / "osnet_x0_25_imagenet.pth")
    model = torchreid.models.build_model("osnet_x0_25", 10, pretrained=True, use_gpu=False)
    assert torch.equal(model.conv1.conv.weight, state["conv1.conv.weight"])


def test_evaluate_rank_on_a_small_gallery(monkeypatch):
    from torchreid.reid.metrics import rank

    # install_fast_ranking() is global; put torchreid's own back after this test.
    monkeypatch.setattr(rank, "evaluate_cy", getattr(rank, "evaluate_cy", None), raising=False)
    monkeypatch.setattr(rank, "IS_CYTHON_AVAI", rank.IS_CYTHON_AVAI)

    # 5 queries x 10 gallery; query 0 loses a same-pid same-camera gallery item, so its ranked
    # list is shorter than the others: torchreid's python evaluator builds a ragged array.
    rng = np.random.default_rng(0)
    distmat = rng.random((5, 10)).astype(np.float32)
    q_pids, g_pids = np.arange(5), np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    q_cams, g_cams = np.zeros(5, int), np.array([1, 1, 1, 1, 1, 0, 2, 2, 2, 2])
    with pytest.raises(ValueError):
        rank.evaluate_py(distmat, q_pids, g_pids, q_cams, g_cams, 50, False)
    direid_plugin.install_fast_ranking()
    cmc, mAP = rank.evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    assert rank.IS_CYTHON_AVAI and compat.ORIGINALS['IS_CYTHON_AVAI'] is False
    assert len(cmc) == 10 and cmc[-1] == 1.0 and 0 < mAP <= 1
    # By hand: AP = mean over a query's matches of precision at each match.
    order = np.argsort(distmat, axis=1)
    keep = ~((g_pids[order] == q_pids[:, None]) & (g_cams[order] == q_cams[:, None]))
    hits = [np.flatnonzero((g_pids[order[i]] == q_pids[i])[keep[i]]) for i in range(5)]
    aps = [np.mean([(j + 1) / (pos + 1) for j, pos in enumerate(h)]) for h in hits]
    assert mAP == pytest.approx(np.mean(aps), abs=1e-6)
    assert cmc[0] == pytest.approx(np.mean([h[0] == 0 for h in hits]))
