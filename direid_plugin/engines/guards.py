"""Non-finite guard: skip optimiser steps with NaN/inf loss or gradients, stop when training diverged.

One bad batch (a NaN loss, an overflowing gradient) should cost one step, not the run; a run
that keeps producing them has diverged and must stop before it saves a poisoned checkpoint.
Like AMP's GradScaler, the guard skips such a step (gradients are zeroed, the optimiser and its
state are untouched) and prints one warning line; after ``max_consecutive`` skipped steps in a
row of one optimiser it raises ``TrainingDiverged`` naming the step and the last good checkpoint.

Every plugin engine is guarded (engines/base.py): each registered optimiser's ``step`` is wrapped,
which covers torchreid's ``forward_backward`` calling ``optimizer.step()`` itself, and
``save_model`` refuses to write a model state holding NaN/inf, so the newest checkpoint on disk is
always a good one.

API for engines that drive their own steps (e.g. the DDGAN engine with two optimisers and AMP)::

    from direid_plugin.engines.guards import NonFiniteGuard, TrainingDiverged

    guard = NonFiniteGuard(max_consecutive=cfg.engine.max_nonfinite_steps,
                           last_good_checkpoint=lambda: latest_valid(pattern))  # or a path, or None
    guard.attach(optimizer_d, "discriminator")      # optional: guard plain optimizer_d.step() too

    # per optimiser step:
    if guard.check_loss(d_loss, "discriminator"):  # False: loss is NaN/inf, skip counted, no backward
        scaler.scale(d_loss).backward()
        guard.step(optimizer_d, scaler)             # replaces scaler.step(optimizer_d) / optimizer_d.step()
    scaler.update()                                 # only if a step or unscale_ ran for this scaler

    guard.check_state({"ddgan": model})             # before saving: raises if weights/buffers are non-finite

* ``check_loss(loss, name)`` -> bool: True when every element of ``loss`` is finite; otherwise counts
  a skipped step for optimiser ``name`` and prints the warning (the caller skips backward and step).
* ``step(optimizer, scaler=None, name=None)`` -> bool: steps when all gradients are finite, else
  zeroes them and counts a skip. With an enabled ``torch.amp.GradScaler`` it calls
  ``scaler.step(optimizer)`` and counts the scaler's own inf/NaN skip as a skip (it reads the
  gradients, which ``scaler.step`` has unscaled in place). Raises ``TrainingDiverged``.
* ``attach(optimizer, name)``: wraps ``optimizer.step`` so plain calls go through ``step``;
  idempotent; ``step`` and ``attach`` may be mixed (each attempt is counted once).
* ``check_state(models)``: raises ``TrainingDiverged`` when a state dict holds NaN/inf.
* ``where``: optional callable returning the position for messages (e.g. "epoch 3, batch 7").
* Counters: ``steps`` (attempts), ``skipped`` (total), ``consecutive[name]``.
"""
import functools

import torch


class TrainingDiverged(RuntimeError):
    """Too many consecutive optimiser steps had non-finite loss or gradients."""


def grads_are_finite(optimizer):
    """True when every gradient of the optimiser's parameters is finite (one device sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def nonfinite_tensors(state_dict):
    """Names of floating-point entries of a state dict that hold NaN or inf."""
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


class NonFiniteGuard:
    def __init__(self, max_consecutive=10, last_good_checkpoint=None, where=None):
        if max_consecutive < 1:
            raise ValueError(f"engine.max_nonfinite_steps must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.last_good_checkpoint = last_good_checkpoint  # path, callable returning one, or None
        self.where = where
        self.steps = 0
        self.skipped = 0
        self.consecutive = {}
        self._raw_steps = {}  # id(optimizer) -> its step before attach()
        self._names = {}

    # -- recording -------------------------------------------------------------------------
    def _position(self):
        where = self.where() if self.where is not None else ""
        return f"step {self.steps}" + (f", {where}" if where else "")

    def _last_good(self):
        found = self.last_good_checkpoint() if callable(self.last_good_checkpoint) else self.last_good_checkpoint
        return found or "none saved yet"

    def _record_ok(self, name):
        self.steps += 1
        self.consecutive[name] = 0

    def _record_skip(self, name, reason):
        self.steps += 1
        self.skipped += 1
        count = self.consecutive.get(name, 0) + 1
        self.consecutive[name] = count
        if count >= self.max_consecutive:
            raise TrainingDiverged(
                f"training diverged: {count} consecutive steps of '{name}' had {reason} (last at {self._position()}); "
                f"last good checkpoint: {self._last_good()} (not overwritten); lower train.lr or check the data, "
                "then continue from it with model.resume"
            )
        print(f"warning: skipped optimizer step of '{name}' at {self._position()}: {reason} "
              f"({count} in a row; stops at {self.max_consecutive})", flush=True)

    # -- checks ----------------------------------------------------------------------------
    def check_loss(self, loss, name="optimizer"):
        if bool(torch.isfinite(loss.detach()).all()):
            return True
        self._record_skip(name, f"a non-finite loss ({loss.detach().float().sum().item()})")
        return False

    def step(self, optimizer, scaler=None, name=None, closure=None):
        name = name or self._names.get(id(optimizer), "optimizer")
        attached = id(optimizer) in self._raw_steps
        if scaler is not None and scaler.is_enabled():
            scaler.step(optimizer)  # unscales in place; skips by itself on inf/NaN
            if grads_are_finite(optimizer):
                if not attached:  # an attached optimizer's wrapped step already counted it
                    self._record_ok(name)
                return True
            optimizer.zero_grad(set_to_none=True)
            self._record_skip(name, "non-finite gradients (GradScaler skipped the step)")
            return False
        if not grads_are_finite(optimizer):
            optimizer.zero_grad(set_to_none=True)
            self._record_skip(name, "non-finite gradients")
            return False
        raw_step = self._raw_steps.get(id(optimizer), optimizer.step)
        raw_step() if closure is None else raw_step(closure)
        self._record_ok(name)
        return True

    def attach(self, optimizer, name="optimizer"):
        if id(optimizer) not in self._raw_steps:
            self._raw_steps[id(optimizer)] = optimizer.step
            self._names[id(optimizer)] = name

            @functools.wraps(optimizer.step)  # keeps the LR scheduler's step-order bookkeeping marker
            def guarded_step(closure=None):
                return self.step(optimizer, closure=closure)

            optimizer.step = guarded_step
        return optimizer

    def check_state(self, models):
        """Raise ``TrainingDiverged`` if any model of ``{name: module}`` holds NaN/inf weights or buffers."""
        for name, model in models.items():
            bad = nonfinite_tensors(model.state_dict())
            if bad:
                raise TrainingDiverged(
                    f"training diverged: model '{name}' holds NaN/inf in {len(bad)} tensors (e.g. {bad[:3]}) at "
                    f"{self._position()}; not saved, last good checkpoint: {self._last_good()}; lower train.lr or "
                    "check the data, then continue from it with model.resume"
                )
