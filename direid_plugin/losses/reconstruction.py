"""Pixel reconstruction and content-invariance losses (docs/method.md 4.4; paper Eq. 2)."""
import torch.nn.functional as F

PIXEL_LOSSES = {"l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss, "l2": F.mse_loss}


def pixel_loss(pred, target, kind="l1"):
    """Mean pixel distance by name (``pixel_loss`` config key): l1 | smooth_l1 | l2."""
    if kind not in PIXEL_LOSSES:
        raise ValueError(f"unknown pixel loss '{kind}'; choose one of {list(PIXEL_LOSSES)}")
    return PIXEL_LOSSES[kind](pred, target)


def content_invariance_loss(content_a, content_b):
    """Mean L1 between the content maps of an image and its self-degraded copy (both sides get gradients)."""
    return F.l1_loss(content_a, content_b)
