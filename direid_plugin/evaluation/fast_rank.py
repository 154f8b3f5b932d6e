"""Vectorised CMC / mAP ranking, a drop-in for torchreid's missing compiled ``evaluate_cy``.

torchreid 0.2.5 ships no compiled evaluator, and its python one loops over queries (35 s for
3000 x 15000) and fails on small galleries (TORCHREID_NOTES B3, B5). This module ranks a chunk
of queries at a time with whole-array NumPy operations; the chunk height is chosen so that
the temporary arrays stay under ``CHUNK_BYTES`` whatever the gallery size.

Semantics (those of torchreid's ``eval_market1501`` / ``eval_cuhk03``):

* gallery items with the query's pid *and* camera are removed from that query's ranking;
* queries left without a true match are skipped; if none is left, ``NoValidQueryError``;
* the CMC of a query is 1 from the rank of its first true match on; AP is the mean of the
  precision at each true match of the ranking;
* the CMC is truncated to ``max_rank``.

Edge case where torchreid's python evaluator raises ValueError (B3: fewer gallery items than
``max_rank`` and same-camera removals leave queries with rankings of different lengths): the
CMC has the length of the longest kept ranking, capped at ``max_rank`` -- that is
``min(max_rank, num_gallery)`` as soon as one valid query loses no gallery item -- and a
shorter ranking counts as its last value (1: a match once found stays found). This rule gives
torchreid's exact output whenever torchreid's works, including its shorter CMC when every
valid query loses the same number of items.

The cuhk03 metric (single-gallery-shot) draws one kept gallery image per identity for each
query, 10 times, from ``numpy.random.default_rng(seed)``; its CMC length is likewise the
largest number of identities left to a valid query, capped at ``max_rank``. Its AP is
computed on the full kept ranking, as torchreid does. Ranking ties are broken by
``np.argsort``'s default algorithm, as torchreid does.
"""
from dataclasses import dataclass

import numpy as np

CHUNK_BYTES = 256 * 2**20
# Upper bound on temporary bytes per (query, gallery) element while a chunk is ranked: the
# argsort indices (int64), the float64 sampling keys and their per-identity minima (cuhk03 /
# single-shot), a handful of boolean masks and an int32 running count.
_BYTES_PER_ELEMENT = 64
CUHK03_REPEATS = 10


class NoValidQueryError(AssertionError, ValueError):
    """No query has a true match left in the gallery.

    An AssertionError like torchreid's ``assert num_valid_q > 0`` (callers written for torchreid
    keep working), and a ValueError because that is what it is.
    """


@dataclass(frozen=True)
class _RankedChunk:
    """A block of queries with their gallery ranked by distance (columns in rank order)."""
    is_match: np.ndarray        # gallery item has the query's pid
    eligible: np.ndarray        # gallery item is not (same pid and same camera)
    order: np.ndarray           # gallery index at each rank
    eligible_by_gallery: np.ndarray  # ``eligible`` with columns in gallery order


@dataclass(frozen=True)
class _IdentityGroups:
    """Gallery columns grouped by pid: ``columns[starts[i]:starts[i+1]]`` share one pid."""
    columns: np.ndarray
    starts: np.ndarray
    group_of: np.ndarray  # group index of each entry of ``columns``

    @classmethod
    def of(cls, g_pids):
        columns = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[columns]
        new_group = np.r_[True, sorted_pids[1:] != sorted_pids[:-1]]
        return cls(columns, np.flatnonzero(new_group), np.cumsum(new_group) - 1)


def _as_arrays(distmat, q_pids, g_pids, q_camids, g_camids):
    distmat = np.asarray(distmat)
    arrays = [np.asarray(a).ravel() for a in (q_pids, g_pids, q_camids, g_camids)]
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    expected = (num_q, num_g, num_q, num_g)
    names = ("q_pids", "g_pids", "q_camids", "g_camids")
    for name, array, size in zip(names, arrays, expected):
        if array.size != size:
            raise ValueError(f"{name} has {array.size} entries, distmat {distmat.shape} needs {size}")
    if distmat.size == 0:
        raise NoValidQueryError(f"Error: empty query or gallery (distmat shape {distmat.shape})")
    return (distmat, *arrays)


def _ranked_chunks(distmat, q_pids, g_pids, q_camids, g_camids):
    num_q, num_g = distmat.shape
    rows_per_chunk = max(1, CHUNK_BYTES // (_BYTES_PER_ELEMENT * max(num_g, 1)))
    for start in range(0, num_q, rows_per_chunk):
        rows = slice(start, start + rows_per_chunk)
        match_by_gallery = g_pids == q_pids[rows, None]
        eligible_by_gallery = ~(match_by_gallery & (g_camids == q_camids[rows, None]))
        order = np.argsort(distmat[rows], axis=1)
        # Gathering booleans is cheaper than gathering pids and comparing afterwards.
        yield _RankedChunk(
            is_match=np.take_along_axis(match_by_gallery, order, axis=1),
            eligible=np.take_along_axis(eligible_by_gallery, order, axis=1),
            order=order,
            eligible_by_gallery=eligible_by_gallery,
        )


def _first_hit_rank(hit, kept_position):
    """0-based rank of each row's first hit within its kept items; -1 for rows without a hit.

    ``kept_position`` is the running count of kept items (1-based position of a kept item).
    """
    first = np.argmax(hit, axis=1)
    rank = kept_position[np.arange(len(hit)), first] - 1
    return np.where(hit.any(axis=1), rank, -1)


def _average_precision(hit, kept_position):
    """Mean precision at the hits of each row (0 for rows without a hit).

    Works on the (few) hit positions only: the k-th hit of a row has precision k / its position.
    """
    rows, cols = np.nonzero(hit)
    num_hits = np.bincount(rows, minlength=len(hit))
    hit_number = np.arange(1, len(rows) + 1) - (np.cumsum(num_hits) - num_hits)[rows]
    precision_sum = np.bincount(rows, weights=hit_number / kept_position[rows, cols], minlength=len(hit))
    return np.divide(precision_sum, num_hits, out=np.zeros(len(hit)), where=num_hits > 0)


def _sample_one_per_identity(eligible_by_gallery, groups, rng):
    """Per row, one uniformly drawn eligible column of every pid that has one (gallery order).

    Each eligible item gets a uniform key and the smallest key of its pid wins; keys tie with
    probability ~num_gallery**2 / 2**53, which is ignored.
    """
    eligible = eligible_by_gallery[:, groups.columns]
    keys = np.where(eligible, rng.random(eligible.shape), np.inf)
    group_min = np.minimum.reduceat(keys, groups.starts, axis=1)
    chosen = np.empty_like(eligible)
    chosen[:, groups.columns] = eligible & (keys == group_min[:, groups.group_of])
    return chosen


def _sampled_hit_ranks(chunk, groups, num_trials, rng):
    """Rank of the true match among one sampled image per identity, per query and trial.

    Returns ``(ranks, num_identities)``: ``ranks`` is (rows, num_trials), -1 for queries with
    no eligible match; ``num_identities`` counts the identities left to each query.
    """
    ranks = np.empty((len(chunk.order), num_trials), dtype=np.int64)
    for trial in range(num_trials):
        chosen = _sample_one_per_identity(chunk.eligible_by_gallery, groups, rng)
        kept = np.take_along_axis(chosen, chunk.order, axis=1)
        ranks[:, trial] = _first_hit_rank(chunk.is_match & kept, np.cumsum(kept, axis=1, dtype=np.int32))
    num_identities = np.add.reduceat(chunk.eligible_by_gallery[:, groups.columns], groups.starts, axis=1)
    return ranks, (num_identities > 0).sum(axis=1)


def cmc_curve(hit_ranks, length):
    """Mean CMC (float32, ``length`` entries) of rows of 0-based hit ranks, one row per query.

    Each row's CMC is averaged over its columns (trials) first; rows must all be valid (>= 0).
    """
    hit_ranks = np.asarray(hit_ranks).reshape(len(hit_ranks), -1)
    counts = np.bincount(hit_ranks[hit_ranks < length], minlength=length)
    return (np.cumsum(counts) / hit_ranks.size).astype(np.float32)


def require_valid_queries(valid):
    """Raise NoValidQueryError unless some query (``valid`` mask) has a true match."""
    if not valid.any():
        raise NoValidQueryError("Error: all query identities do not appear in gallery")


def _full_ranking_stats(chunk):
    """First-hit rank (-1: none), kept-list length and AP of each query on its whole kept ranking."""
    hit = chunk.is_match & chunk.eligible
    kept_position = np.cumsum(chunk.eligible, axis=1, dtype=np.int32)
    return _first_hit_rank(hit, kept_position), kept_position[:, -1], _average_precision(hit, kept_position)


def _evaluate_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    stats = [_full_ranking_stats(chunk) for chunk in _ranked_chunks(distmat, q_pids, g_pids, q_camids, g_camids)]
    first_ranks, kept_counts, aps = map(np.concatenate, zip(*stats))
    valid = first_ranks >= 0
    require_valid_queries(valid)
    length = min(max_rank, int(kept_counts[valid].max()))
    return cmc_curve(first_ranks[valid], length), float(np.mean(aps[valid]))


def _evaluate_cuhk03(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, seed):
    rng = np.random.default_rng(seed)
    groups = _IdentityGroups.of(g_pids)
    sampled, identity_counts, aps = [], [], []
    for chunk in _ranked_chunks(distmat, q_pids, g_pids, q_camids, g_camids):
        ranks, num_identities = _sampled_hit_ranks(chunk, groups, CUHK03_REPEATS, rng)
        sampled.append(ranks)
        identity_counts.append(num_identities)
        aps.append(_full_ranking_stats(chunk)[2])
    sampled, identity_counts, aps = map(np.concatenate, (sampled, identity_counts, aps))
    valid = sampled[:, 0] >= 0  # a query with an eligible match always samples one
    require_valid_queries(valid)
    length = min(max_rank, int(identity_counts[valid].max()))
    return cmc_curve(sampled[valid], length), float(np.mean(aps[valid]))


def evaluate_vectorised(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03=False, *, seed=0):
    """CMC and mAP with torchreid's ``evaluate_cy`` signature (see the module docstring).

    Returns ``(cmc, mAP)``: a float32 array of at most ``max_rank`` entries and a float.
    ``seed`` only affects the cuhk03 metric's gallery sampling.
    """
    arrays = _as_arrays(distmat, q_pids, g_pids, q_camids, g_camids)
    if use_metric_cuhk03:
        return _evaluate_cuhk03(*arrays, max_rank, seed)
    return _evaluate_market(*arrays, max_rank)


def single_shot_hit_ranks(distmat, q_pids, g_pids, q_camids, g_camids, num_trials, rng):
    """Per query and trial, the 0-based rank of the true match among one random image per identity.

    Gallery items with the query's pid and camera are removed before sampling. Returns an
    int array (num_query, num_trials); rows of queries without an eligible match are -1.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _as_arrays(distmat, q_pids, g_pids, q_camids, g_camids)
    groups = _IdentityGroups.of(g_pids)
    chunks = _ranked_chunks(distmat, q_pids, g_pids, q_camids, g_camids)
    return np.concatenate([_sampled_hit_ranks(chunk, groups, num_trials, rng)[0] for chunk in chunks])
