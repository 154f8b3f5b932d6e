"""The MLR single-shot protocol (docs/method.md 6.3) and its summary over identity splits.

For every query, gallery items with the query's pid and camera are dropped, then in each of
``num_trials`` trials one gallery image per identity is kept at random (independently per
query and trial, from ``numpy.random.default_rng(seed)``), and the CMC and AP of the query's
ranking are computed on that reduced list. Results are averaged over trials, then over the
queries that have a true match.

The reduced list holds exactly one true match, so a query's AP in a trial is the reciprocal
of the match's 1-based rank: the protocol's "mAP" -- the one the official code prints, and
the reason it exceeds Rank-1 -- is the mean reciprocal rank.

The spread that the sampling adds is reported beside the means: the standard deviation across
trials (``numpy.std``, ddof=0) of each trial's Rank-1 and mAP over the valid queries. It is 0
when every gallery identity has one image (MLR-VIPeR's test gallery), and shrinks with more trials
only in the mean's error, not in itself. The official DI-REID test uses 100 trials
(``OFFICIAL_NUM_TRIALS``, the default here and in the presets that name the official protocol).

The CMC has one entry per gallery identity. Rank-k for k beyond that length is the last CMC
value (1.0: every valid query finds its match within the list).

Sampling is deterministic for a given seed and input size (queries are processed in blocks
whose height depends on the gallery size, which fixes the order random numbers are drawn in;
identity_sampling.py).
"""
from typing import TypedDict

import numpy as np

from direid_plugin.evaluation.identity_sampling import single_shot_hit_ranks
from direid_plugin.evaluation.ranking import cmc_curve, require_valid_queries

DEFAULT_RANKS = (1, 5, 10, 20)
OFFICIAL_NUM_TRIALS = 100


class SingleShotResult(TypedDict):
    cmc: np.ndarray          # float32, one entry per gallery identity
    mAP: float               # mean reciprocal rank (see the module docstring)
    rank1: float
    rank5: float
    rank10: float
    rank20: float
    rank1_trial_std: float   # std across trials of the per-trial Rank-1
    mAP_trial_std: float     # std across trials of the per-trial mAP
    num_trials: int
    num_valid_queries: int


def rank_at(cmc, k):
    """Rank-k accuracy; past the end of the CMC the curve stays at its last value."""
    return float(cmc[min(k, len(cmc)) - 1])


def evaluate_single_shot(distmat, q_pids, g_pids, q_camids, g_camids, num_trials=OFFICIAL_NUM_TRIALS, seed=0):
    """Single-shot CMC and mAP of one split; ``num_trials`` gallery samplings (official: 100).

    Raises ``query_blocks.NoValidQueryError`` when no query has a true match in the gallery.
    """
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    hit_ranks = single_shot_hit_ranks(
        distmat, q_pids, g_pids, q_camids, g_camids, num_trials, np.random.default_rng(seed)
    )
    valid = hit_ranks[:, 0] >= 0
    require_valid_queries(valid)
    hit_ranks = hit_ranks[valid]
    cmc = cmc_curve(hit_ranks, len(np.unique(g_pids)))
    reciprocal_ranks = 1.0 / (hit_ranks + 1)
    return SingleShotResult(
        cmc=cmc,
        mAP=float(np.mean(reciprocal_ranks)),
        **{f"rank{k}": rank_at(cmc, k) for k in DEFAULT_RANKS},
        rank1_trial_std=float(np.std((hit_ranks == 0).mean(0))),
        mAP_trial_std=float(np.std(reciprocal_ranks.mean(0))),
        num_trials=num_trials,
        num_valid_queries=int(valid.sum()),
    )


def summarise_splits(results, ranks=DEFAULT_RANKS):
    """Mean and std over splits of Rank-k (for each k in ``ranks``) and mAP.

    ``results`` are mappings with ``cmc`` and ``mAP`` (e.g. ``evaluate_single_shot`` outputs).
    Returns ``{'rank1': (mean, std), ..., 'mAP': (mean, std)}``; std is the population std
    (ddof=0, ``numpy.std``'s default), which is 0 for a single split.
    """
    if not results:
        raise ValueError("summarise_splits needs at least one result")
    values = {
        **{f"rank{k}": [rank_at(r["cmc"], k) for r in results] for k in ranks},
        "mAP": [float(r["mAP"]) for r in results],
    }
    return {name: (float(np.mean(v)), float(np.std(v))) for name, v in values.items()}
