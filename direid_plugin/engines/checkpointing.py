"""Engine checkpoints in torchreid's layout, written crash-safely, and resuming from them.

Layout (torchreid's): ``<save_dir>/<registered model name>/model.pth.tar-<epoch>`` holding
``state_dict``, ``epoch``, ``rank1``, ``optimizer`` and ``scheduler``, so torchreid's own
``load_checkpoint`` / ``resume_from_checkpoint`` / ``load_pretrained_weights`` read them. The
plugin adds ``rng`` (exact resume) and omits optimizer/scheduler entries that are None (torchreid
0.2.5 calls ``.state_dict()`` on them unconditionally and crashes). Engines with training state
of their own (an AMP scaler, a private random stream) add it through ``checkpoint_extras()`` and
take it back in ``load_checkpoint_extras(state)``. Checkpoints of a run trained through
``run.train`` also hold ``train_seconds``, so a resumed run reports its whole training time.
"""
import glob
import os
import os.path as osp
import shutil
import time

from direid_plugin.checkpoint import (
    capture_rng_state, latest_valid, load_checkpoint, load_model_state, restore_rng_state, save_checkpoint,
)

CHECKPOINT_PREFIX = "model.pth.tar-"


class TrainingClock:
    """Wall-clock seconds of a training run across resumes.

    Started when a ``run.train`` invocation starts; a resumed run adds the ``train_seconds`` its
    checkpoint recorded, so a run stopped and resumed (a session's end) is not timed from its last
    resume only. Work done after the last checkpoint of a stopped invocation is lost, redone after
    the resume and counted once. Resuming a finished run adds that invocation's final evaluation.
    """

    def __init__(self, now=time.time):
        self._now = now
        self._started = now()
        self._before = 0.0

    def seconds(self):
        return self._before + self._now() - self._started

    def resume_from(self, state, path):
        """Count the seconds recorded in the checkpoint ``state`` read from ``path``."""
        if "train_seconds" in state:
            self._before = float(state["train_seconds"])
        else:
            print(f'=> "{path}" records no training time (an older checkpoint): the time reported counts from this resume')


def record_training_time(engine, state):
    """Add the engine's training seconds so far to a checkpoint ``state`` (engines without a clock add nothing)."""
    clock = getattr(engine, "clock", None)
    if clock is not None:
        state["train_seconds"] = clock.seconds()
    return state


def restore_training_time(engine, state, path):
    clock = getattr(engine, "clock", None)
    if clock is not None:
        clock.resume_from(state, path)


def save_model(self, epoch, rank1, save_dir, is_best=False):
    """Replacement for ``Engine.save_model``: atomic, None-safe, float rank1, keeps the last K."""
    rng = capture_rng_state()
    for name in self.get_model_names():
        state = {
            "state_dict": self._models[name].state_dict(),
            "epoch": epoch + 1,
            "rank1": float(rank1),
            "rng": rng,
        }
        if self._optims.get(name) is not None:
            state["optimizer"] = self._optims[name].state_dict()
        if self._scheds.get(name) is not None:
            state["scheduler"] = self._scheds[name].state_dict()
        if hasattr(self, "checkpoint_extras"):
            state.update(self.checkpoint_extras())
        record_training_time(self, state)
        path = osp.join(save_dir, name, f"{CHECKPOINT_PREFIX}{epoch + 1}")
        save_checkpoint(state, path, keep_last=getattr(self, "keep_last", 0))
        print(f'Checkpoint saved to "{path}"')
        if is_best:
            best = osp.join(save_dir, name, "model-best.pth.tar")
            shutil.copyfile(path, best + ".tmp")
            os.replace(best + ".tmp", best)


def find_resume_checkpoint(resume, save_dir, model_name):
    """Resolve ``model.resume``: '' -> None, 'auto' -> newest valid checkpoint in save_dir, else a path."""
    if not resume:
        return None
    if resume != "auto":
        return resume
    return latest_valid(osp.join(save_dir, model_name, glob.escape(CHECKPOINT_PREFIX) + "*"))


def resume_engine(engine, resume, save_dir):
    """Restore every registered model, optimiser, scheduler and the RNG; return the start epoch.

    Engines with more state than torchreid's layout holds (the iteration-based DDGAN engine)
    provide ``resume_training(resume, save_dir)`` and are delegated to.
    """
    if hasattr(engine, "resume_training"):
        return engine.resume_training(resume, save_dir)
    start_epoch = 0
    for name in engine.get_model_names():
        path = find_resume_checkpoint(resume, save_dir, name)
        if path is None:
            print(f"=> model.resume=auto: no checkpoint for '{name}' in {save_dir}; starting from scratch")
            return 0
        state = load_checkpoint(path)
        load_model_state(engine._models[name], state, path)
        if engine._optims.get(name) is not None and "optimizer" in state:
            engine._optims[name].load_state_dict(state["optimizer"])
        if engine._scheds.get(name) is not None and "scheduler" in state:
            engine._scheds[name].load_state_dict(state["scheduler"])
        if "rng" in state:
            restore_rng_state(state["rng"])
        if hasattr(engine, "load_checkpoint_extras"):
            engine.load_checkpoint_extras(state)
        restore_training_time(engine, state, path)
        start_epoch = state["epoch"]
        print(f'=> Resumed "{name}" from "{path}" (next epoch {start_epoch + 1})')
    return start_epoch
