"""Where a training iteration's wall time goes: named, nested sections with exclusive timing.

Code marks its parts with ``with section("G swaps"): ...``. Outside a ``SectionTimer`` block the
call costs one global lookup, so the marks stay in the training code. Inside one, each section
accumulates the time spent in it *minus* the time of the sections nested in it, so the shares of
one iteration add up to its wall time (``tools/benchmark_ddgan.py --profile``).

On CUDA the device is synchronised at every section boundary while timing, so kernels are
charged to the section that launched them (timing then slows the run down a little).
"""
import contextlib
import time
from collections import defaultdict

import torch

_active = None  # the SectionTimer currently recording, if any


class SectionTimer:
    """Records exclusive seconds per section name while active (``with timer: ...``)."""

    def __init__(self, device=None):
        self.seconds = defaultdict(float)
        self._stack = []  # [name, start of its current exclusive stretch]
        self._sync = device is not None and torch.device(device).type == "cuda"

    def _now(self):
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def __enter__(self):
        global _active
        if _active is not None:
            raise RuntimeError("a SectionTimer is already recording")
        _active = self
        return self

    def __exit__(self, *exc):
        global _active
        _active = None

    def enter(self, name):
        now = self._now()
        if self._stack:
            parent = self._stack[-1]
            self.seconds[parent[0]] += now - parent[1]
        self._stack.append([name, now])

    def leave(self):
        now = self._now()
        name, start = self._stack.pop()
        self.seconds[name] += now - start
        if self._stack:
            self._stack[-1][1] = now

    def reset(self):
        self.seconds.clear()


@contextlib.contextmanager
def _timed(timer, name):
    timer.enter(name)
    try:
        yield
    finally:
        timer.leave()


def section(name):
    """Charge the enclosed code to ``name`` when a SectionTimer is recording; otherwise do nothing."""
    if _active is None:
        return contextlib.nullcontext()
    return _timed(_active, name)
