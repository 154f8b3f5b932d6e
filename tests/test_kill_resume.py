"""SIGKILL ``tools/train.py`` mid-save and mid-epoch; ``model.resume auto`` ends on the uninterrupted run's weights.

Exactness rests on the checkpoint's RNG states (python, numpy, torch): with ``data.workers 0`` the
sampler's permutation and the loader's seed come from the global torch RNG and the flips from
python's, all restored on resume. The runs use one thread each (OMP_NUM_THREADS=1): it keeps the
reference run and the interrupted chain, which run side by side, off each other's cores.
"""
import glob
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest
import torch

from direid_plugin.engines.checkpointing import TrainingClock, find_resume_checkpoint, latest_valid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "baselines", "osnet_x0_25_pku_softmax.yaml")
PAUSE_LAUNCHER = os.path.join(REPO, "tests", "pause_before_rename.py")
TIMEOUT = 300


def _command(pku_root, save_dir, *extra, launcher=()):
    return [sys.executable, *launcher, os.path.join(REPO, "tools", "train.py"), "--config-file", CONFIG,
            "data.root", os.path.dirname(pku_root), "data.save_dir", str(save_dir), "data.height", "64",
            "data.width", "32", "data.workers", "0", "train.max_epoch", "3", "test.eval_freq", "1",
            "train.print_freq", "10", "train.seed", "7", "engine.progress", "False", "use_gpu", "False", *extra]


class Run:
    """A training subprocess whose output lines can be awaited."""

    def __init__(self, command, **env):
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env))
        self.lines, self._queue = [], queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, needle):
        while True:
            line = self._queue.get(timeout=TIMEOUT)
            assert line is not None, f"run ended before printing {needle!r}:\n" + "".join(self.lines[-30:])
            self.lines.append(line)
            if needle in line:
                return line

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=TIMEOUT) == -signal.SIGKILL

    def finish(self):
        assert self.proc.wait(timeout=TIMEOUT) == 0, "".join(self.lines[-30:])
        while (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.lines.append(line)
        return "".join(self.lines)


@pytest.mark.slow
def test_sigkill_mid_save_and_mid_epoch_then_resume_matches_uninterrupted_run(pku_root, tmp_path):
    reference = Run(_command(pku_root, tmp_path / "reference"))
    save_dir = tmp_path / "interrupted"
    folder = save_dir / "model"

    # 1. Killed while saving checkpoint 2: its complete temporary file is never renamed.
    run = Run(_command(pku_root, save_dir, launcher=(PAUSE_LAUNCHER, "model.pth.tar-2")))
    run.wait_for("paused before renaming")
    run.kill()
    temps = glob.glob(str(folder / ".tmp-*"))
    assert len(temps) == 1 and os.path.getsize(temps[0]) > 0
    assert sorted(os.listdir(folder)) == sorted(["model.pth.tar-1", os.path.basename(temps[0])])
    assert latest_valid(str(folder / "model.pth.tar-*")) == str(folder / "model.pth.tar-1")
    assert find_resume_checkpoint("auto", str(save_dir), "model") == str(folder / "model.pth.tar-1")
    assert torch.load(folder / "model.pth.tar-1", weights_only=True)["epoch"] == 1  # the weights-only loader

    # 2. Resumed from checkpoint 1, killed in the middle of epoch 3's training.
    run = Run(_command(pku_root, save_dir, "model.resume", "auto"))
    run.wait_for('Resumed "model" from "' + str(folder / "model.pth.tar-1"))
    run.wait_for('Checkpoint saved to "' + str(folder / "model.pth.tar-2"))
    run.wait_for("epoch: [3/3][10/31]")
    run.kill()
    assert latest_valid(str(folder / "model.pth.tar-*")) == str(folder / "model.pth.tar-2")

    # 3. Resumed from checkpoint 2 to the end.
    run = Run(_command(pku_root, save_dir, "model.resume", "auto"))
    run.wait_for('Resumed "model" from "' + str(folder / "model.pth.tar-2"))
    run.finish()
    reference.finish()

    resumed = torch.load(folder / "model.pth.tar-3", weights_only=True)
    uninterrupted = torch.load(tmp_path / "reference" / "model" / "model.pth.tar-3", weights_only=True)
    assert resumed["epoch"] == uninterrupted["epoch"] == 3
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    unequal = [k for k, v in uninterrupted["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert unequal == []
    assert resumed["rank1"] == uninterrupted["rank1"]
    # The training time of the chain counts all three invocations, not the last one only (about a third).
    assert resumed["train_seconds"] > 0.7 * uninterrupted["train_seconds"] > 0
    # The stale temporary file of the killed save is still ignored.
    assert latest_valid(str(folder / "model.pth.tar-*")) == str(folder / "model.pth.tar-3")


class _FakeNow:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_training_clock_adds_the_seconds_a_checkpoint_recorded(capsys):
    now = _FakeNow()
    first = TrainingClock(now)
    now.t += 30
    state = {"epoch": 2, "train_seconds": first.seconds()}  # what an engine's checkpoint records
    assert state["train_seconds"] == 30

    now.t += 500  # the machine was off; a new invocation resumes from that checkpoint
    second = TrainingClock(now)
    second.resume_from(state, "ckpt-2")
    now.t += 12
    assert second.seconds() == 42

    old = TrainingClock(now)  # a checkpoint written before the clock existed: counted from the resume, and said so
    old.resume_from({"epoch": 2}, "old-ckpt")
    now.t += 5
    assert old.seconds() == 5
    assert '"old-ckpt" records no training time' in capsys.readouterr().out
