"""Every read of a weights file goes through here, with one rule set.

Backbone and Re-ID weights, stage-1 checkpoints, trained checkpoints and resumable training
checkpoints are all read by ``load_checkpoint``:

* torch's weights-only unpickler (no code runs from a file); the few numpy types torchreid 0.2.5
  puts in its own checkpoints (``rank1`` as a numpy scalar) are allow-listed, nothing else;
* the model state is the file's ``state_dict`` entry or the file itself, ``module.`` prefixes
  (``nn.DataParallel``) dropped;
* every failure is a ``CheckpointError`` whose one line names the file, the config key it came
  from when there is one, and the fix.

Model constructors take ``Weights`` (a state dict and where it came from), never paths; the
registered factories (what torchreid's ``build_model`` calls by name) accept a path or ``Weights``
and read paths here, so a run that already read a file passes it on instead of reading it again.
"""
import os
from typing import NamedTuple

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A weights file is missing, truncated, not a checkpoint, or does not fit the model."""


class Weights(NamedTuple):
    """A model state dict and where it came from: ``source`` (the file) and ``option`` (the config
    key or command-line option that named it, '' when none), both named in errors."""

    state: dict
    source: str
    option: str = ""

    @property
    def label(self):
        return _named(self.option, self.source)

    def part(self, prefix):
        """The sub-state under ``prefix.`` (keys without the prefix)."""
        start = len(prefix) + 1
        return self._replace(state={k[start:]: v for k, v in self.state.items() if k.startswith(prefix + ".")})

    def without(self, prefix):
        """This state without the keys under ``prefix.``."""
        return self._replace(state={k: v for k, v in self.state.items() if not k.startswith(prefix + ".")})


class LoadReport(NamedTuple):
    """Outcome of a non-strict load: keys loaded, model keys left untouched, file keys not used."""

    loaded: list
    missing: list
    unexpected: list
    mismatched: list  # in both, with different shapes (e.g. a classifier for another class count)


def _numpy_safe_globals():
    """numpy types that torchreid's own checkpoints contain (rank1 as a numpy float)."""
    types = [np.dtype, np.ndarray]
    core = getattr(np, "_core", None) or np.core
    types.append(core.multiarray.scalar)
    types.append(core.multiarray._reconstruct)
    types.extend(type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint32", "bool"))
    return types


def _named(option, path):
    return f"{option} {path}" if option else str(path)


def load_checkpoint(path, map_location="cpu", option=""):
    """The whole object stored in a checkpoint file written by the plugin, by torchreid or by torch.

    ``option``: the config key or command-line option the path came from, named in errors.
    """
    if path is None or path == "":
        raise CheckpointError(f"{option or 'model.load_weights'}: no checkpoint path given; set it to a file")
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise CheckpointError(f"{_named(option, path)}: checkpoint not found; check the path")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{_named(option, path)}: checkpoint is empty (0 bytes); delete it and use an earlier one")
    with open(path, "rb") as f:
        head = f.read(8)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise CheckpointError(f"{_named(option, path)}: not a torch checkpoint (torch writes a zip archive or a pickle; "
                              f"this file starts with {head!r}); give a .pth / .pth.tar file")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise CheckpointError(
            f"{_named(option, path)}: cannot load checkpoint: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''} (truncated, not a torch checkpoint, or contains non-weight "
            "objects)"
        ) from None


def model_state(checkpoint, source):
    """The model state dict inside a loaded checkpoint (torchreid's or a bare one), ``module.`` prefixes dropped."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} holds no state dict (a {type(checkpoint).__name__}); give a torchreid checkpoint")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def read(path, option=""):
    """``Weights`` of the model state in file ``path`` (``option``: the config key, named in errors)."""
    return Weights(model_state(load_checkpoint(path, option=option), _named(option, path)), path, option)


def resolve(value, option=""):
    """``value`` as ``Weights``: read when it is a path, kept when it already is; None for '' / None."""
    if value is None or isinstance(value, Weights):
        return value
    if isinstance(value, str):
        return read(value, option) if value else None
    raise TypeError(f"{option or 'weights'}: expected a file path or direid_plugin.weights.Weights, "
                    f"got {type(value).__name__}")


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


def load_strict(module, weights, fix="it needs a checkpoint of the same model.name trained on the same number of identities"):
    """Load ``weights`` into ``module`` exactly; a mismatch is a ``CheckpointError`` naming keys, shapes and ``fix``."""
    mismatch = state_dict_mismatch(module.state_dict(), weights.state)
    if mismatch:
        raise CheckpointError(f"{weights.label} does not fit {type(module).__name__}: {mismatch}; {fix}")
    module.load_state_dict(weights.state)


def load_partial(module, weights):
    """Non-strictly load the tensors of ``weights`` that fit ``module`` (same name and shape).

    Non-strict by design (a Re-ID checkpoint's classifier rarely fits another dataset), but a file
    of which nothing fits is an error naming it: it belongs to another model.
    """
    own = module.state_dict()
    mismatched = sorted(k for k, v in weights.state.items()
                        if k in own and torch.is_tensor(v) and own[k].shape != v.shape)
    usable = {k: v for k, v in weights.state.items() if k in own and torch.is_tensor(v) and k not in mismatched}
    if not usable:
        raise CheckpointError(f"{weights.label}: no tensor fits {type(module).__name__} "
                              f"({state_dict_mismatch(own, weights.state)}); is it the weights of another model?")
    result = module.load_state_dict(usable, strict=False)
    unexpected = sorted(k for k in weights.state if k not in own)
    return LoadReport(sorted(usable), sorted(result.missing_keys), unexpected, mismatched)


def load_parts(weights, required, optional=None, fix=""):
    """Load sub-states of ``weights`` into modules: ``{key prefix: module}``; returns the loaded prefixes.

    Each ``required`` module must fit its sub-state exactly (else a ``CheckpointError`` naming the
    file, the part and ``fix``); ``optional`` ones are loaded when they fit and left at init otherwise.
    """
    loaded = []
    for prefix, module in {**required, **(optional or {})}.items():
        part = weights.part(prefix)
        mismatch = state_dict_mismatch(module.state_dict(), part.state) if part.state else f"no '{prefix}.*' keys"
        if mismatch and prefix in required:
            raise CheckpointError(f"{weights.label}: '{prefix}' does not fit: {mismatch}; {fix}")
        if mismatch:
            print(f"=> {weights.source}: '{prefix}' left at its init ({mismatch})")
            continue
        module.load_state_dict(part.state)
        loaded.append(prefix)
    return loaded
