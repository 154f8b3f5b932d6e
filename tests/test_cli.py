"""The CLI trains a stock torchreid baseline on real data, evaluates it and reloads its checkpoint."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torchreid

from direid_plugin.cli import test as cli_test
from direid_plugin.cli import train as cli_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "baselines", "osnet_x0_25_pku_softmax.yaml")


def _tiny(pku_root, save_dir, *extra):
    return ["--config-file", CONFIG, "data.root", os.path.dirname(pku_root), "data.save_dir", str(save_dir),
            "data.height", "64", "data.width", "32", "data.workers", "0", "train.max_epoch", "1",
            "engine.progress", "False", *extra]


@pytest.mark.slow
def test_train_then_test_a_stock_baseline(pku_root, tmp_path, capsys):
    save_dir = tmp_path / "run"
    cli_train.main(_tiny(pku_root, save_dir))
    train_out = capsys.readouterr().out
    assert "osnet_x0_25 (softmax)" in train_out and "pku_reid" in train_out
    # An epoch has fewer batches than train.print_freq (20): it still prints its progress line.
    assert "epoch: [1/1]" in train_out

    ckpt = save_dir / "model" / "model.pth.tar-1"
    state = torchreid.utils.load_checkpoint(str(ckpt))  # torchreid's own loader
    assert state["epoch"] == 1 and set(state) >= {"state_dict", "optimizer", "scheduler", "rank1"}
    trained = json.loads((save_dir / "results.json").read_text())["results"]["pku_reid"]
    assert glob.glob(str(save_dir / "events.out.tfevents.*")) and glob.glob(str(save_dir / "train.log-*"))

    # Tested in the training run's own folder: the training's config and results stay as they were.
    written = {name: (save_dir / name).read_bytes() for name in ("config.yaml", "results.json")}
    cli_test.main(_tiny(pku_root, save_dir, "model.load_weights", str(ckpt), "test.ranks", "[1, 5]"))
    assert {name: (save_dir / name).read_bytes() for name in written} == written
    tested = json.loads((save_dir / "test_results.json").read_text())["results"]["pku_reid"]
    assert (save_dir / "test_config.yaml").read_bytes() != written["config.yaml"]  # the test's own overrides
    # Same weights, same deterministic evaluation: the numbers must agree exactly.
    assert tested["rank1"] == pytest.approx(trained["rank1"]) and tested["mAP"] == pytest.approx(trained["mAP"])
    assert state["rank1"] == pytest.approx(trained["rank1"])


@pytest.mark.slow
def test_triplet_engine_and_resume_auto(pku_root, tmp_path):
    save_dir = tmp_path / "tri"
    args = ["loss.name", "triplet", "loss.triplet.weight_x", "1.0", "sampler.train_sampler", "RandomIdentitySampler",
            "train.batch_size", "16"]
    cli_train.main(_tiny(pku_root, save_dir, *args))
    first = torch.load(save_dir / "model" / "model.pth.tar-1", weights_only=True)
    # Resuming a finished 1-epoch run into a 2-epoch one trains exactly one more epoch.
    cli_train.main(_tiny(pku_root, save_dir, *args, "train.max_epoch", "2", "model.resume", "auto"))
    second = torch.load(save_dir / "model" / "model.pth.tar-2", weights_only=True)
    assert second["epoch"] == 2
    assert second["optimizer"]["state"] and not torch.equal(
        first["state_dict"]["conv1.conv.weight"], second["state_dict"]["conv1.conv.weight"])


@pytest.mark.slow
def test_tools_script_reports_config_errors_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), "train.lrr", "0.1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and "train.lrr" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_scripts_are_installed():
    for name in ("direid-train", "direid-test", "direid-evaluate-stage1"):
        assert shutil.which(name, path=os.path.dirname(sys.executable)), name
