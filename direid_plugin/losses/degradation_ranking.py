"""Degradation ranking losses on the degradation discriminator D_d (docs/method.md 4.3, 4.4; paper Eq. 5, 6, 10).

Convention: a HIGHER D_d score means HIGHER quality (less degraded), as in the official code.
The paper words it the other way round (D_d scores the degree of degradation). The two are
equivalent: negating every score and swapping the pair's roles gives the same hinge,
max(0, margin - (s_higher - s_lower)).

Each loss is a margin ranking averaged over D_d's scales, on the per-image global average of
each scale's patch map: lower-quality images must score at least ``margin`` below their
higher-quality partners. Pairs are passed already ordered as (lower, higher); ``rank_label`` and
``order_pair`` build that order from D_d's own prediction for unpaired real images (Eq. 10).
"""
import torch

from direid_plugin.losses.gan import outputs_of, penalised
from direid_plugin.models.discriminator import patch_scores


def margin_ranking(lower_outputs, higher_outputs, margin=1.0):
    """mean over scales of mean over images of max(0, margin - (s_higher - s_lower))."""
    lower, higher = patch_scores(lower_outputs), patch_scores(higher_outputs)
    return (margin - (higher - lower)).clamp(min=0).mean(dim=0).mean()


@torch.no_grad()
def rank_label(dis, x_first, x_second):
    """Eq. 10's label, predicted by D_d itself (no gradient): +1 where ``x_first`` scores at least as
    high as ``x_second`` summed over scales (i.e. is judged of higher quality), else -1. Shape (B,)."""
    first, second = patch_scores(dis(x_first)).sum(1), patch_scores(dis(x_second)).sum(1)
    return torch.where(first >= second, 1.0, -1.0)


def order_pair(x_first, x_second, label):
    """(lower, higher) per image from a ±1 ``label`` (+1: ``x_first`` is the higher-quality one)."""
    first_higher = (label > 0).view(-1, *([1] * (x_first.dim() - 1)))
    return torch.where(first_higher, x_second, x_first), torch.where(first_higher, x_first, x_second)


def ranking_d_loss(dis, lower, higher, margin=1.0, gp_weight=0.01):
    """D-step ranking on detached images, plus ``gp_weight`` x gradient penalty on the higher-quality image.

    For unpaired real pairs ordered by ``rank_label`` this penalises whichever image D_d ranks
    higher; the official code always penalises its second argument (x_a), whatever the label.
    """
    return penalised(dis, lower, higher, gp_weight, lambda lower_outputs, higher_outputs: margin_ranking(
        lower_outputs, higher_outputs, margin))


def ranking_g_loss(dis, lower, higher, margin=1.0):
    """G-step ranking (no penalty): gradients reach whichever images carry a graph."""
    return margin_ranking(*outputs_of(dis, lower, higher), margin)
