"""Ranks of the true match when each gallery identity is represented by one random image.

This is the single-gallery-shot setting of torchreid's cuhk03 metric and of the MLR single-shot
protocol: for each query and trial, one of each identity's kept images (see query_blocks.py) is
drawn uniformly, and the rank of the drawn true match among the drawn images is recorded.

Random numbers come from a ``numpy.random.Generator``: for each block of queries and each trial
one uniform key per (query, gallery image) is drawn as a (rows, num_gallery) array whose columns
follow the gallery sorted by pid (stable), and each identity keeps its smallest-key image. Keys
tie with probability ~num_gallery**2 / 2**53, which is ignored. Distance ties among drawn images
are broken by gallery index.
"""
from dataclasses import dataclass

import torch

from direid_plugin.evaluation.query_blocks import LabelledDistances


@dataclass(frozen=True)
class IdentityGroups:
    """Gallery images grouped by pid."""
    group_of: torch.Tensor     # (num_gallery,) group index of each gallery image
    num_groups: int
    key_columns: torch.Tensor  # gallery image fed by each column of a drawn key array

    @classmethod
    def of(cls, g_pids):
        pids, group_of = torch.unique(g_pids, return_inverse=True)
        return cls(group_of, len(pids), torch.sort(g_pids, stable=True).indices)


def _draw_keys(rng, num_rows, groups, device):
    drawn = torch.from_numpy(rng.random((num_rows, len(groups.group_of)))).to(device)
    keys = torch.empty_like(drawn)
    keys[:, groups.key_columns] = drawn
    return keys


def _rank_of_drawn_match(distances, drawn, is_match):
    """0-based rank of each row's drawn true match among its drawn images; -1 if none was drawn."""
    hit = drawn & is_match
    column = hit.to(torch.uint8).argmax(1, keepdim=True)
    match_distance = distances.gather(1, column)
    gallery_index = torch.arange(distances.shape[1], device=distances.device)
    before = (distances < match_distance) | ((distances == match_distance) & (gallery_index < column))
    return torch.where(hit.any(1), (drawn & before).sum(1), -1)


def sampled_hit_ranks(block, groups, num_trials, rng):
    """``(ranks, num_identities)`` for a ``QueryBlock``.

    ``ranks`` (rows, num_trials): rank of the drawn true match per trial, -1 for queries without
    a kept true match. ``num_identities`` (rows,): identities with a kept image, per query.
    """
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    kept = block.kept
    group_index = groups.group_of.expand_as(kept)
    ranks = torch.empty((len(kept), num_trials), dtype=torch.long, device=kept.device)
    for trial in range(num_trials):
        keys = _draw_keys(rng, len(kept), groups, kept.device).masked_fill_(~kept, torch.inf)
        group_min = torch.full((len(kept), groups.num_groups), torch.inf, dtype=keys.dtype, device=keys.device)
        group_min.scatter_reduce_(1, group_index, keys, "amin")
        drawn = kept & (keys == group_min.gather(1, group_index))
        ranks[:, trial] = _rank_of_drawn_match(block.distances, drawn, block.is_match)
    return ranks, torch.isfinite(group_min).sum(1)  # identities whose smallest key is a kept image's


def single_shot_hit_ranks(distances, q_pids, g_pids, q_camids, g_camids, num_trials, rng):
    """Per query and trial, the 0-based rank of the true match among one random image per identity.

    ``distances``: a (num_query, num_gallery) matrix (NumPy or torch) or a distances.FeatureDistances.
    Returns a NumPy int array (num_query, num_trials); rows of queries without a kept match are -1.
    """
    data = LabelledDistances(distances, q_pids, g_pids, q_camids, g_camids)
    groups = IdentityGroups.of(data.g_pids)
    ranks = [sampled_hit_ranks(block, groups, num_trials, rng)[0] for block in data.blocks()]
    return torch.cat(ranks).cpu().numpy()
