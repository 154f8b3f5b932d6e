"""Exact RNG capture for checkpoints that continue bit for bit.

States are stored as tensors and plain lists so they pass the weights-only loader (weights.py).
"""
import contextlib
import random

import numpy as np
import torch


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
