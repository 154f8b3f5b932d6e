"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from features, in bounded memory, CPU or CUDA.

Gives the distances torchreid's ``re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)`` gives when
fed ``compute_distance_matrix`` of the same features and metric, within float tolerance (images
at exactly the same distance from one image, e.g. duplicates, may enter its neighbour lists in
another order than NumPy's argsort puts them).
torchreid's semantics, with N = Q + G images (queries first, then gallery):

* d'(i, j) = d(i, j)**2 / max_j' d(i, j')**2: the given distance squared, then scaled by each
  image's largest value (torchreid normalises columns of a symmetric matrix, then transposes);
* R(i, k): the k-reciprocal neighbours, j among i's k + 1 nearest (i itself included) with i
  among j's k + 1 nearest;
* R*(i) = R(i, k1) plus R(j, round(k1 / 2)) for each j in R(i, k1) whose set has more than 2/3
  of its members in R(i, k1);
* V[i, j] = exp(-d'(i, j)) normalised to sum 1 over R*(i), 0 elsewhere;
* query expansion (k2 > 1): V[i] becomes the mean of V over i's k2 nearest;
* Jaccard distance 1 - s / (2 - s), s = sum over j of min(V[q, j], V[g, j]);
* result = (1 - lambda_value) * Jaccard + lambda_value * d'(q, g), shape (Q, G).

torchreid holds several N x N matrices (8.3 GB at 3,000 + 15,000 images). Here distances are
computed a block of rows at a time, and what is kept is each image's nearest-neighbour list
(N x max(k1 + 1, k2)), V as a sparse matrix (tens to a few hundred entries per row) and the
Q x G result. The Jaccard sums visit only the non-zero entries a query and a gallery image share.
"""
import torch

from torchreid.reid.metrics import compute_distance_matrix

from direid_plugin.evaluation import distances
from direid_plugin.evaluation.distances import check_metric, paired_distances, row_slices
from direid_plugin.evaluation.sparse_rows import SparseRows, cost_batches, expand_segments


# A Jaccard contribution has about four times a distance element's temporaries: batches of
# block_elements / 4 contributions stay near a distance block's size.
_ELEMENTS_PER_CONTRIBUTION = 4


def _check_parameters(k1, k2, lambda_value):
    if not isinstance(k1, int) or k1 < 0:
        raise ValueError(f"k1 must be an int >= 0, got {k1!r}")
    if not isinstance(k2, int) or k2 < 1:
        raise ValueError(f"k2 must be an int >= 1, got {k2!r}")
    if not 0 <= lambda_value <= 1:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")


def _nearest_and_query_distances(features, num_query, metric, width, block_elements):
    """Each image's ``width`` nearest images (nearest first) and largest squared distance, and
    d' from queries to gallery (Q x G)."""
    num = len(features)
    nearest = torch.empty((num, width), dtype=torch.long, device=features.device)
    row_max = torch.empty(num, dtype=features.dtype, device=features.device)
    query_to_gallery = torch.empty((num_query, num - num_query), dtype=features.dtype, device=features.device)
    for rows in row_slices(num, num, block_elements):
        squared = compute_distance_matrix(features[rows], features, metric).pow_(2)
        row_max[rows] = squared.amax(1)
        scaled = squared.div_(row_max[rows, None])
        nearest[rows] = torch.topk(scaled, width, dim=1, largest=False, sorted=True).indices
        if rows.start < num_query:
            stop = min(rows.stop, num_query)
            query_to_gallery[rows.start:stop] = scaled[: stop - rows.start, num_query:]
    return nearest, row_max, query_to_gallery


def _reciprocal_mask(neighbours, block_elements):
    """(N, k) mask: is image i among the k neighbours of its neighbour ``neighbours[i, a]``?"""
    num, k = neighbours.shape
    mask = torch.empty((num, k), dtype=torch.bool, device=neighbours.device)
    for rows in row_slices(num, k * k, block_elements):
        own = torch.arange(rows.start, rows.stop, device=neighbours.device)
        mask[rows] = (neighbours[neighbours[rows]] == own[:, None, None]).any(-1)
    return mask


def _unique_per_row(candidates, padding):
    """(row, column) of the distinct non-padding entries of each row of ``candidates``."""
    ordered = candidates.sort(1).values
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    row, slot = (new & (ordered != padding)).nonzero(as_tuple=True)
    return row, ordered[row, slot]


def _expanded_sets(nearest, k1, block_elements):
    """R*(i) of every image, as (row, column) pairs sorted by row then column."""
    num = len(nearest)
    forward, half = nearest[:, : k1 + 1], nearest[:, : round(k1 / 2) + 1]
    in_forward, in_half = _reciprocal_mask(forward, block_elements), _reciprocal_mask(half, block_elements)
    rows_out, columns_out = [], []
    for rows in row_slices(num, forward.shape[1] ** 2 * half.shape[1], block_elements):
        members, is_member = forward[rows], in_forward[rows]                   # R(i): (b, k)
        candidate_sets, candidate_in = half[members], in_half[members]         # R(j, k1/2): (b, k, h)
        shared = candidate_in & ((candidate_sets[..., None] == members[:, None, None, :])
                                 & is_member[:, None, None, :]).any(-1)
        # torchreid's test, in float64 as numpy evaluates it: |shared| > 2/3 * |R(j, k1/2)|
        accepted = is_member & (shared.sum(-1) > candidate_in.sum(-1).double() * (2.0 / 3))
        added = candidate_sets.masked_fill(~(candidate_in & accepted[..., None]), num)
        row, column = _unique_per_row(torch.cat([members.masked_fill(~is_member, num), added.flatten(1)], 1), num)
        rows_out.append(row + rows.start)
        columns_out.append(column)
    return torch.cat(rows_out), torch.cat(columns_out)


def _encoding(features, row, column, row_max, metric, block_elements):
    """V: exp(-d'(i, j)) over R*(i) (given as sorted (row, column) pairs), normalised per row."""
    weights = torch.empty(len(row), dtype=features.dtype, device=features.device)
    for pairs in row_slices(len(row), 2 * features.shape[1], block_elements):
        distance = paired_distances(features[row[pairs]], features[column[pairs]], metric)
        weights[pairs] = torch.exp(-(distance * distance) / row_max[row[pairs]])
    row_sum = torch.zeros_like(row_max).index_add_(0, row, weights)
    return SparseRows(row, column, weights / row_sum[row], len(features))


def _query_expansion(encoding, nearest, k2):
    """Each row of V replaced by the mean of the rows of its k2 nearest images."""
    num, width = len(nearest), min(k2, len(nearest))
    start, count = encoding.row_segments()
    averaged = nearest[:, :width].flatten()  # row i averages rows averaged[i * width : (i + 1) * width]
    owner, position = expand_segments(start[averaged], count[averaged])
    return SparseRows.summed(owner // width, encoding.column[position], encoding.value[position] / width, num, num)


def _add_shared_minima(sums, query_rows, gallery_columns, budget):
    """sums[q, g] += min(V[q, j], V[g, j]) over the columns j that query q and gallery image g share.

    Each (query entry, gallery entry) pair of a column is one contribution; contributions are
    laid out in batches of at most ``budget`` (int32 indices: a block has far fewer than 2**31).
    """
    start, count, gallery_row, gallery_value = gallery_columns
    costs = count[query_rows.column]
    first = start[query_rows.column].to(torch.int32)
    target_row = (query_rows.row * sums.shape[1]).to(torch.int32)
    for batch in cost_batches(costs, budget):
        entry, position = expand_segments(first[batch], costs[batch])
        shared = torch.minimum(query_rows.value[batch][entry], gallery_value[position])
        sums.view(-1).index_add_(0, target_row[batch][entry] + gallery_row[position], shared)


def _jaccard_into(result, encoding, num_query, lambda_value, block_elements):
    """result (d' of queries to gallery) becomes (1 - lambda) * Jaccard + lambda * result."""
    num, num_gallery = encoding.num_rows, result.shape[1]
    start, count, gallery_row, gallery_value = encoding.rows(num_query, num).by_column(num)
    gallery_columns = (start, count, gallery_row.to(torch.int32), gallery_value)
    for rows in row_slices(num_query, num_gallery, block_elements):
        sums = torch.zeros((rows.stop - rows.start, num_gallery), dtype=result.dtype, device=result.device)
        _add_shared_minima(sums, encoding.rows(rows.start, rows.stop), gallery_columns,
                           block_elements // _ELEMENTS_PER_CONTRIBUTION)
        jaccard = 1 - sums / (2 - sums)
        result[rows] = jaccard * (1 - lambda_value) + result[rows] * lambda_value


def re_rank(query_features, gallery_features, metric="euclidean", k1=20, k2=6, lambda_value=0.3,
            block_elements=None):
    """Re-ranked query x gallery distances (float32, on the features' device); see the module docstring.

    ``metric`` is that of torchreid's ``compute_distance_matrix`` (``euclidean``: squared
    Euclidean; ``cosine``). ``k1``, ``k2``, ``lambda_value`` as torchreid's ``re_ranking``
    (defaults: the paper's 20, 6, 0.3). ``block_elements`` overrides the block size.
    """
    check_metric(metric)
    _check_parameters(k1, k2, lambda_value)
    block_elements = block_elements or distances.BLOCK_ELEMENTS
    with torch.no_grad():
        features = torch.cat([query_features, gallery_features]).float()
        num_query = len(query_features)
        width = min(len(features), max(k1 + 1, k2))
        nearest, row_max, result = _nearest_and_query_distances(features, num_query, metric, width, block_elements)
        row, column = _expanded_sets(nearest, k1, block_elements)
        encoding = _encoding(features, row, column, row_max, metric, block_elements)
        if k2 > 1:
            encoding = _query_expansion(encoding, nearest, k2)
        _jaccard_into(result, encoding, num_query, lambda_value, block_elements)
    return result
