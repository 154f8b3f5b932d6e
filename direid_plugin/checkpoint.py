"""Crash-safe checkpoint files and exact RNG capture.

* Saves go to a temporary file in the same folder, are fsync'ed and then renamed over the
  target, so a process killed at any moment leaves either the old or the new file, never half
  of one. Only the newest ``keep_last`` files of a series are kept.
* Loads use torch's weights-only unpickler (no code runs from a checkpoint file). torchreid
  0.2.5 stores ``rank1`` as a numpy scalar, which that unpickler rejects; the few numpy types
  needed to read such files are allow-listed, nothing else.
* RNG states are stored as tensors and plain lists so they also pass the weights-only loader.
"""
import contextlib
import glob
import os
import random
import re
import tempfile
import time

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, not a checkpoint, or does not fit the model."""


# Test hook (tests/test_kill_resume.py): when this variable equals a checkpoint's file name, its save
# announces itself on stdout and sleeps once the temporary file is complete, before the rename, so a
# test can SIGKILL the process in the middle of a save deterministically. Never set in normal use.
PAUSE_BEFORE_RENAME_ENV = "DIREID_TEST_PAUSE_BEFORE_RENAME"


def _numpy_safe_globals():
    """numpy types that torchreid's own checkpoints contain (rank1 as a numpy float)."""
    types = [np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core
    types.append(core.multiarray.scalar)
    types.append(core.multiarray._reconstruct)
    types.extend(type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint32", "bool"))
    return types


def save_checkpoint(state, path, keep_last=0):
    """Atomically write ``state`` to ``path``; keep only the newest ``keep_last`` of its series.

    The series is every file in the folder that differs from ``path`` only in its trailing
    number (``model.pth.tar-3``, ``model.pth.tar-7``, ...). ``keep_last <= 0`` keeps all.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".ckpt")
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoints to {folder} ({e.strerror}); set data.save_dir to a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        _test_pause_before_rename(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    if keep_last > 0:
        for old in series(path)[:-keep_last]:
            os.remove(old)
    return path


def _test_pause_before_rename(tmp, path):
    if os.environ.get(PAUSE_BEFORE_RENAME_ENV) == os.path.basename(path):
        print(f"test hook: {tmp} written, pausing before renaming it to {path}", flush=True)
        time.sleep(3600)


def _fsync_dir(folder):
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _series_pattern(path):
    head, number = re.match(r"^(.*?)(\d+)?$", os.path.basename(path)).groups()
    return head, number is not None


def series(path):
    """Files of ``path``'s series, oldest first (by their trailing number)."""
    head, numbered = _series_pattern(path)
    if not numbered:
        return [path] if os.path.exists(path) else []
    folder = os.path.dirname(os.path.abspath(path))
    found = []
    for candidate in glob.glob(os.path.join(folder, glob.escape(head) + "*")):
        tail = os.path.basename(candidate)[len(head):]
        if tail.isdigit():
            found.append((int(tail), candidate))
    return [p for _, p in sorted(found)]


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by the plugin or by torchreid, with the weights-only loader."""
    if path is None or path == "":
        raise CheckpointError("no checkpoint path given; set model.load_weights (or model.resume) to a file")
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}; delete it and use an earlier one")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise CheckpointError(
            f"cannot load checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(truncated, not a torch checkpoint, or contains non-weight objects)"
        ) from None


def model_state(checkpoint, path):
    """The model state dict inside a loaded checkpoint (torchreid's or a bare one), ``module.`` prefixes dropped."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict (a {type(checkpoint).__name__}); give a torchreid checkpoint")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def state_dict_mismatch(model_state_dict, loaded):
    """One line on how ``loaded`` differs from a model's state dict: shapes, missing and extra keys."""
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(model_state_dict[k].shape)}" for k, v in loaded.items()
              if k in model_state_dict and torch.is_tensor(v) and v.shape != model_state_dict[k].shape]
    missing = [k for k in model_state_dict if k not in loaded]
    extra = [k for k in loaded if k not in model_state_dict]
    parts = [f"{len(shapes)} shape mismatches ({'; '.join(shapes[:3])})"] if shapes else []
    if missing:
        parts.append(f"{len(missing)} model keys absent from the file (e.g. {missing[:3]})")
    if extra:
        parts.append(f"{len(extra)} file keys unknown to the model (e.g. {extra[:3]})")
    return ", ".join(parts)


def load_model_state(model, checkpoint, path):
    """Strictly load a loaded checkpoint's model state; a mismatch is a ``CheckpointError`` naming keys/shapes."""
    loaded = model_state(checkpoint, path)
    mismatch = state_dict_mismatch(model.state_dict(), loaded)
    if mismatch:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {mismatch}; it needs a checkpoint of the "
                              "same model.name trained on the same number of identities")
    model.load_state_dict(loaded)


def latest_valid(path_pattern):
    """The newest loadable file among those matching a glob pattern (by trailing number), or None."""
    candidates = sorted(glob.glob(path_pattern), key=_trailing_number)
    for candidate in reversed(candidates):
        try:
            load_checkpoint(candidate)
        except CheckpointError:
            continue
        return candidate
    return None


def _trailing_number(path):
    match = re.search(r"(\d+)$", os.path.basename(path))
    return int(match.group(1)) if match else -1


def capture_rng_state():
    """python, numpy and torch (CPU and CUDA) RNG states, as weights-only-loadable values."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Run a block (an evaluation, say) without moving the global RNGs, so training is unchanged by it."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
