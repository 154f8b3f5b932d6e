"""Engine checkpoints in torchreid's layout, written crash-safely, and resuming from them.

Layout (torchreid's): ``<save_dir>/<registered model name>/model.pth.tar-<epoch>`` holding
``state_dict``, ``epoch``, ``rank1``, ``optimizer`` and ``scheduler``, so torchreid's own
``load_checkpoint`` / ``resume_from_checkpoint`` / ``load_pretrained_weights`` read them. The
plugin adds ``rng`` (exact resume) and omits optimizer/scheduler entries that are None (torchreid
0.2.5 calls ``.state_dict()`` on them unconditionally and crashes). Engines with training state
of their own (an AMP scaler, a private random stream) add it through ``checkpoint_extras()`` and
take it back in ``load_checkpoint_extras(state)``.
"""
import glob
import os
import os.path as osp
import shutil

from direid_plugin.checkpoint import (
    capture_rng_state, latest_valid, load_checkpoint, load_model_state, restore_rng_state, save_checkpoint,
)

CHECKPOINT_PREFIX = "model.pth.tar-"


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
        start_epoch = state["epoch"]
        print(f'=> Resumed "{name}" from "{path}" (next epoch {start_epoch + 1})')
    return start_epoch
