"""CMC, mAP and mINP with torchreid's semantics, in torch (CPU or CUDA), one block of queries at a time.

torchreid 0.2.5 ships no compiled evaluator and its python one loops over queries (35 s for
3000 x 15000; it also fails on small galleries, docs/method.md 9). This one works on blocks
of ``distances.BLOCK_ELEMENTS`` query x gallery entries on the device of the distances, so memory
stays bounded whatever the gallery size; given features instead of a matrix
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

How ranks are found without sorting the gallery: a true match's rank is the number of true
matches before it plus the number of false matches before it. Each row's distances are cut into
equal-width bins (a monotone map, so a lower bin means a smaller distance); the true matches
per bin, accumulated, give every false match the number of true matches certainly before it,
and only false matches sharing a bin with a true match are compared exactly. A histogram of
those counts then gives the false matches before each true match.
"""
from dataclasses import dataclass

import numpy as np
import torch

from direid_plugin.evaluation.identity_sampling import IdentityGroups, sampled_hit_ranks
from direid_plugin.evaluation.query_blocks import LabelledDistances, NoValidQueryError

CUHK03_REPEATS = 10
DEFAULT_MAX_RANK = 50
# Gallery items per distance bin, on average: fewer bins cost less to build, more bins leave
# fewer items to compare exactly.
ITEMS_PER_BIN = 8


@dataclass(frozen=True)
class RankingResult:
    cmc: np.ndarray  # float32, at most max_rank entries
    mAP: float
    mINP: float
    num_valid_queries: int


@dataclass(frozen=True)
class _RankedMatches:
    """The kept true matches of a block of queries, ordered by (row, distance, gallery index)."""
    row: torch.Tensor       # query row within the block
    column: torch.Tensor    # gallery index
    distance: torch.Tensor
    per_row: torch.Tensor   # number of kept true matches of each row

    @classmethod
    def of(cls, block):
        row, column = (block.is_match & block.kept).nonzero(as_tuple=True)
        distance = block.distances[row, column]
        order = torch.sort(distance, stable=True).indices  # columns ascend within a row already
        order = order[torch.sort(row[order], stable=True).indices]
        per_row = torch.bincount(row, minlength=len(block.distances))
        return cls(row[order], column[order], distance[order], per_row)

    @property
    def first_of_row(self):
        """Index of each row's first match in the flat list."""
        return torch.cumsum(self.per_row, 0) - self.per_row

    @property
    def slot(self):
        """k for a row's k-th (0-based) match."""
        return torch.arange(len(self.row), device=self.row.device) - self.first_of_row[self.row]


def _distance_bins(distances, num_bins):
    """Bin index of every entry: equal-width bins from each row's minimum to its maximum.

    A monotone map per row: a smaller distance never gets a larger bin. Rows with an infinite
    spread get a single bin (all their items are then compared exactly).
    """
    low, high = distances.amin(1, keepdim=True), distances.amax(1, keepdim=True)
    if torch.isnan(low).any() or torch.isnan(high).any():
        raise ValueError("distances contain NaN: rank on finite distances")
    spread = high - low
    finite_spread = torch.isfinite(spread)
    scale = torch.where(finite_spread & (spread > 0), num_bins / spread, torch.zeros_like(spread))
    scaled = (distances - low) * scale
    if not finite_spread.all():
        scaled = scaled.nan_to_num_(0.0)  # inf * 0 in single-bin rows
    return scaled.clamp_(0, num_bins - 1).long()


def _matches_before_in_bin(distance, column, first, count, matches):
    """For false matches, how many of the ``count`` true matches of their bin (flat list from
    ``first`` on) come before them: smaller distance, or the same distance and a smaller index."""
    before = torch.zeros_like(column)
    last = max(len(matches.row) - 1, 0)
    for offset in range(int(count.max()) if len(count) else 0):
        index = (first + offset).clamp_(max=last)
        match_distance, match_column = matches.distance[index], matches.column[index]
        ahead = (match_distance < distance) | ((match_distance == distance) & (match_column < column))
        before += (offset < count) & ahead
    return before


def _false_matches_before(block, matches):
    """For each true match (flat list), the number of kept false matches ranked before it."""
    distances, is_false = block.distances, ~block.is_match
    num_rows, num_gallery = distances.shape
    num_bins = max(1, num_gallery // ITEMS_PER_BIN)
    bins = _distance_bins(distances, num_bins)
    per_bin = torch.zeros((num_rows, num_bins), dtype=torch.long, device=distances.device)
    per_bin.index_put_((matches.row, bins[matches.row, matches.column]), torch.ones_like(matches.row), accumulate=True)
    in_lower_bins = torch.cumsum(per_bin, 1) - per_bin
    # True matches before each false match: all those of lower bins, plus some of its own bin.
    true_before = in_lower_bins.gather(1, bins)
    row, column = ((per_bin > 0).gather(1, bins) & is_false).nonzero(as_tuple=True)
    shared_bin = bins[row, column]
    true_before[row, column] += _matches_before_in_bin(
        distances[row, column], column, matches.first_of_row[row] + in_lower_bins[row, shared_bin],
        per_bin[row, shared_bin], matches,
    )
    # A false match is before the k-th true match iff fewer than k + 1 true matches precede it.
    max_per_row = int(matches.per_row.max())
    histogram = torch.zeros((num_rows, max_per_row + 1), dtype=torch.int32, device=distances.device)
    histogram.scatter_add_(1, true_before, is_false.to(torch.int32))
    return torch.cumsum(histogram, 1)[matches.row, matches.slot]


@dataclass(frozen=True)
class _QueryStats:
    first_hit: torch.Tensor  # 0-based rank of the first true match; -1: no kept true match
    num_kept: torch.Tensor   # length of the kept ranking
    ap: torch.Tensor
    inp: torch.Tensor


def _full_ranking_stats(block):
    matches = _RankedMatches.of(block)
    num_rows = len(block.distances)
    slot = matches.slot
    position = slot + _false_matches_before(block, matches)  # 0-based rank in the kept ranking
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
