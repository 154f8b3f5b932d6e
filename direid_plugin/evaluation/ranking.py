"""CMC, mAP and mINP with torchreid's semantics, in torch (CPU or CUDA), one block of queries at a time.

torchreid 0.2.5 ships no compiled evaluator and its python one loops over queries (about 50 s
for 3000 x 15000; it also fails on small galleries, docs/method.md 9); upstream's compiled one
(rank_cy.pyx) takes about 3.3 s there, this one 0.6 s on 2 cores (tools/benchmark_eval.py). It
works on blocks of ``distances.BLOCK_ELEMENTS`` query x gallery entries on the device of the
distances, so memory stays bounded whatever the gallery size; given features instead of a matrix
(``distances.FeatureDistances``) it never holds the whole query x gallery matrix.

Semantics (those of torchreid's ``eval_market1501`` / ``eval_cuhk03``):

* gallery items with the query's pid *and* camera are removed from that query's ranking;
* queries left without a true match are skipped; if none is left, ``NoValidQueryError``;
* the CMC of a query is 1 from the rank of its first true match on; AP is the mean of the
  precision at each true match of the ranking; INP (Ye et al., TPAMI 2021) is the number of
  true matches over the 1-based rank of the last one;
* the CMC is truncated to ``max_rank``.

Distance ties are broken by gallery index. torchreid orders tied items as NumPy's (unstable,
SIMD) ``argsort`` leaves them, so the two can differ only where a true match and a false one
are at exactly the same distance.

Where torchreid's python evaluator raises ValueError (B3: fewer gallery items than ``max_rank``
and same-camera removals leave queries with rankings of different lengths), the CMC has the
length of the longest kept ranking, capped at ``max_rank``, and a shorter ranking counts as its
last value (1: a match once found stays found). This gives torchreid's exact output whenever
torchreid's works, including its shorter CMC when every valid query loses the same number of
items.

The cuhk03 metric (single-gallery-shot) ranks one random kept image per gallery identity, 10
times per query (identity_sampling.py, seeded); its CMC length is likewise the largest number
of identities left to a valid query, capped at ``max_rank``. Its AP and INP use the full kept
ranking, as torchreid's AP does.

How ranks are found: each row is sorted once, by distance and then gallery index. For float32
distances (what features give) the sort runs on int64 keys that hold the distance's bits, made
order-preserving, above the gallery index: unique within a row, so a plain (fast, unstable) integer
sort is exact and the index comes back from the key's low bits. On CPU that sort is NumPy's
vectorised one (several times faster than torch's); other dtypes use torch's stable sort. The
ranks of the kept true matches then follow from where they land, less the removed items before
them, with no Python loop over queries or gallery items.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from direid_plugin.evaluation.identity_sampling import IdentityGroups, sampled_hit_ranks
from direid_plugin.evaluation.query_blocks import LabelledDistances, NoValidQueryError

CUHK03_REPEATS = 10
DEFAULT_MAX_RANK = 50
PARALLEL_SORT_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class RankingResult:
    cmc: np.ndarray  # float32, at most max_rank entries
    mAP: float
    mINP: float
    num_valid_queries: int


def _require_no_nan(distances):
    # One reduction: a sum is NaN when an entry is NaN (or +inf meets -inf; the check below decides).
    if not torch.isnan(distances.sum()):
        return
    if torch.isnan(distances).any():
        rows = torch.isnan(distances).any(1).nonzero().flatten()[:5].tolist()
        raise ValueError(f"distances contain NaN (query rows {rows} of this block): the features they come from are "
                         "not finite; check the model's output for NaN/inf (a diverged training) before ranking")


def _float32_order_keys(distances):
    """int64 keys that order a float32 block's entries within a row as (distance, gallery index):
    the distance's bits, made order-preserving as a signed integer, above the 32-bit index."""
    bits = distances.view(torch.int32)
    # Negative floats order by decreasing magnitude; -0.0 becomes 0, like +0.0 (they compare equal).
    ordered = torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits).long()
    return ordered.mul_(2**32).add_(torch.arange(distances.shape[1], device=distances.device))


def _sort_rows_in_place(array):
    """Sort each row of a NumPy array, the rows split over torch's CPU threads (NumPy's sort
    releases the GIL); small arrays in the calling thread, where starting threads costs more."""
    workers = min(torch.get_num_threads(), len(array))
    if workers < 2 or array.size < PARALLEL_SORT_ELEMENTS:
        array.sort(axis=1)
        return
    bounds = np.linspace(0, len(array), workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda rows: array[rows[0]:rows[1]].sort(axis=1), zip(bounds[:-1], bounds[1:])))


def _ranking_columns(distances):
    """Each row's gallery indices in ranking order: by distance, ties by gallery index."""
    if distances.dtype != torch.float32:
        return torch.sort(distances, dim=1, stable=True).indices
    keys = _float32_order_keys(distances)  # unique within a row: a plain sort is exact
    if keys.device.type == "cpu":  # NumPy's vectorised integer sort is several times faster than torch's on CPU
        _sort_rows_in_place(keys.numpy())
    else:
        keys = torch.sort(keys, dim=1).values
    return keys & 0xFFFFFFFF


def _row_starts(counts):
    """Index in a flat, row-ordered list of each row's first entry, from the entries per row."""
    return torch.cumsum(counts, 0) - counts


@dataclass(frozen=True)
class _RankedMatches:
    """The kept true matches of a block of queries, in (row, rank) order."""
    row: torch.Tensor       # query row within the block
    slot: torch.Tensor      # k for a row's k-th match
    position: torch.Tensor  # 0-based rank in the row's kept ranking
    per_row: torch.Tensor   # number of kept true matches of each row

    @classmethod
    def of(cls, block):
        distances = block.distances.contiguous()
        _require_no_nan(distances)
        columns = _ranking_columns(distances)
        # Every true match, kept or removed (removed items are matches), in ranking order.
        row, index = block.is_match.gather(1, columns).nonzero(as_tuple=True)
        is_removed = block.removed[row, columns[row, index]]
        removed = is_removed.long()
        # Removed matches before each match of its row: a cumulative count restarted at each row.
        removed_per_row = torch.zeros(len(distances), dtype=torch.long, device=row.device).index_add_(0, row, removed)
        removed_before = _row_starts(removed) - _row_starts(removed_per_row)[row]
        kept = ~is_removed
        row, position = row[kept], index[kept] - removed_before[kept]
        per_row = torch.bincount(row, minlength=len(distances))
        slot = torch.arange(len(row), device=row.device) - _row_starts(per_row)[row]
        return cls(row, slot, position, per_row)


@dataclass(frozen=True)
class _QueryStats:
    first_hit: torch.Tensor  # 0-based rank of the first true match; -1: no kept true match
    num_kept: torch.Tensor   # length of the kept ranking
    ap: torch.Tensor
    inp: torch.Tensor


def _full_ranking_stats(block):
    matches = _RankedMatches.of(block)
    num_rows, slot, position = len(block.distances), matches.slot, matches.position
    float64 = dict(dtype=torch.float64, device=position.device)
    per_row, rank = matches.per_row.to(torch.float64), position.to(torch.float64) + 1
    ap = torch.zeros(num_rows, **float64).index_add_(0, matches.row, (slot + 1) / rank)
    ap /= per_row.clamp(min=1)
    first_hit = torch.full((num_rows,), -1, dtype=torch.long, device=position.device)
    is_first = slot == 0
    first_hit[matches.row[is_first]] = position[is_first]
    inp = torch.zeros(num_rows, **float64)
    is_last = slot == matches.per_row[matches.row] - 1
    inp[matches.row[is_last]] = per_row[matches.row[is_last]] / rank[is_last]
    return _QueryStats(first_hit, block.kept.sum(1), ap, inp)


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


def _concatenated(parts):
    return [torch.cat(column).cpu().numpy() for column in zip(*parts)]


def _result(hit_ranks, cmc_lengths, ap, inp, valid, max_rank):
    require_valid_queries(valid)
    length = min(max_rank, int(cmc_lengths[valid].max()))
    return RankingResult(
        cmc=cmc_curve(hit_ranks[valid], length),
        mAP=float(ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        num_valid_queries=int(valid.sum()),
    )


def _evaluate_market(data, max_rank, block_elements):
    parts = [(s.first_hit, s.num_kept, s.ap, s.inp) for s in map(_full_ranking_stats, data.blocks(block_elements))]
    first_hit, num_kept, ap, inp = _concatenated(parts)
    return _result(first_hit, num_kept, ap, inp, first_hit >= 0, max_rank)


def _evaluate_cuhk03(data, max_rank, seed, block_elements):
    rng = np.random.default_rng(seed)
    groups = IdentityGroups.of(data.g_pids)
    parts = []
    for block in data.blocks(block_elements):
        stats = _full_ranking_stats(block)
        sampled, num_identities = sampled_hit_ranks(block, groups, CUHK03_REPEATS, rng)
        parts.append((sampled, num_identities, stats.ap, stats.inp))
    sampled, num_identities, ap, inp = _concatenated(parts)
    valid = sampled[:, 0] >= 0  # a query with a kept true match always draws one
    return _result(sampled, num_identities, ap, inp, valid, max_rank)


def evaluate_ranking(distances, q_pids, g_pids, q_camids, g_camids, max_rank=DEFAULT_MAX_RANK,
                     use_metric_cuhk03=False, seed=0, block_elements=None):
    """CMC, mAP and mINP of a query x gallery ranking (see the module docstring).

    ``distances``: a (num_query, num_gallery) matrix (NumPy, or torch on any device) or a
    ``distances.FeatureDistances`` (computed block by block on the features' device). Labels may
    be NumPy or torch. ``seed`` only affects the cuhk03 metric's gallery sampling;
    ``block_elements`` overrides the block size (query x gallery entries per block).
    """
    data = LabelledDistances(distances, q_pids, g_pids, q_camids, g_camids)
    with torch.no_grad():
        if use_metric_cuhk03:
            return _evaluate_cuhk03(data, max_rank, seed, block_elements)
        return _evaluate_market(data, max_rank, block_elements)


def evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03=False, *, seed=0):
    """Drop-in for torchreid's compiled ``evaluate_cy``: ``(cmc, mAP)`` from ``evaluate_ranking``."""
    result = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03, seed)
    return result.cmc, result.mAP
