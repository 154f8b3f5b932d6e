"""Engine checkpoints: written crash-safely in torchreid's layout, found again, and resumed from.

Layout (torchreid's): ``<save_dir>/<registered model name>/model.pth.tar-<epoch>`` holding
``state_dict``, ``epoch``, ``rank1``, ``optimizer`` and ``scheduler``, so torchreid's own
``load_checkpoint`` / ``resume_from_checkpoint`` / ``load_pretrained_weights`` read them. The
plugin adds ``rng`` (exact resume) and omits optimizer/scheduler entries that are None (torchreid
0.2.5 calls ``.state_dict()`` on them unconditionally and crashes). Engines with training state
of their own (an AMP scaler, a private random stream) add it through ``checkpoint_extras()`` and
take it back in ``load_checkpoint_extras(state)``. Every checkpoint also holds ``train_seconds``
(the engine's ``TrainingClock``), so a resumed run reports its whole training time.

Saves are atomic (``direid_plugin.files``): a process killed at any moment leaves either the old or
the new file, never half of one. Only the newest ``keep_last`` files of a series are kept. Reading
goes through ``direid_plugin.weights``.
"""
import glob
import os
import os.path as osp
import re
import time

import torch

from direid_plugin.files import write_atomic
from direid_plugin.weights import CheckpointError, load_checkpoint

CHECKPOINT_PREFIX = "model.pth.tar-"


def save_checkpoint(state, path, keep_last=0):
    """Atomically write ``state`` to ``path``; keep only the newest ``keep_last`` of its series.

    The series is every file in the folder that differs from ``path`` only in its trailing
    number (``model.pth.tar-3``, ``model.pth.tar-7``, ...). ``keep_last <= 0`` keeps all.
    """
    try:
        write_atomic(path, lambda f: torch.save(state, f))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path} ({e.strerror}); set data.save_dir to a writable folder") from None
    if keep_last > 0:
        for old in series(path)[:-keep_last]:
            os.remove(old)
    return path


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


class TrainingClock:
    """Wall-clock seconds of a training run across resumes.

    Started when a ``run.train`` invocation starts (or with the engine); a resumed run adds the ``train_seconds`` its
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


def find_resume_checkpoint(resume, save_dir, model_name):
    """Resolve ``model.resume``: '' -> None, 'auto' -> newest valid checkpoint in save_dir, else a path."""
    if not resume:
        return None
    if resume != "auto":
        return resume
    return latest_valid(osp.join(save_dir, model_name, glob.escape(CHECKPOINT_PREFIX) + "*"))
