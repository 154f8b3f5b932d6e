"""Query-by-gallery distances as torchreid defines them, delivered a block of queries at a time.

The ranking evaluator and re-ranking never need the whole query x gallery matrix at once, so
they read it through a ``DistanceSource``: either a ready matrix (NumPy or torch, any device)
or features plus a metric, whose blocks are computed on demand with torchreid's
``compute_distance_matrix`` (``euclidean`` is its *squared* Euclidean distance, ``cosine`` is
1 - cosine similarity). ``paired_distances`` gives the same metric for aligned row pairs.
"""
import numpy as np
import torch
import torch.nn.functional as F

from torchreid.reid.metrics import compute_distance_matrix

METRICS = ("euclidean", "cosine")
# Elements (queries x gallery) handled per block: about 40 bytes of temporaries each while a
# block is ranked, so ~170 MB whatever the gallery size.
BLOCK_ELEMENTS = 2**22


def check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def paired_distances(a, b, metric):
    """Distance between ``a[i]`` and ``b[i]`` for every row i (the metric of ``compute_distance_matrix``)."""
    check_metric(metric)
    if metric == "cosine":
        return 1 - (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)
    return (a * a).sum(1) + (b * b).sum(1) - 2 * (a * b).sum(1)


def row_slices(num_rows, elements_per_row, block_elements=None):
    """Consecutive slices of rows holding about ``block_elements`` elements each (at least one row)."""
    step = max(1, (block_elements or BLOCK_ELEMENTS) // max(elements_per_row, 1))
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


class MatrixDistances:
    """A precomputed (num_query, num_gallery) distance matrix, NumPy or torch."""

    def __init__(self, distmat):
        if not torch.is_tensor(distmat):
            distmat = torch.from_numpy(np.ascontiguousarray(distmat))
        if distmat.dim() != 2:
            raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(distmat.shape)}")
        self.matrix = distmat

    @property
    def shape(self):
        return tuple(self.matrix.shape)

    @property
    def device(self):
        return self.matrix.device

    def block(self, rows):
        return self.matrix[rows]


class FeatureDistances:
    """Distances computed block by block from query and gallery features (torch, same device)."""

    def __init__(self, query_features, gallery_features, metric="euclidean"):
        check_metric(metric)
        if query_features.dim() != 2 or gallery_features.dim() != 2 or query_features.shape[1] != gallery_features.shape[1]:
            raise ValueError(
                "query_features and gallery_features must be 2-D with the same width, got shapes "
                f"{tuple(query_features.shape)} and {tuple(gallery_features.shape)}"
            )
        self.query, self.gallery, self.metric = query_features, gallery_features, metric

    @property
    def shape(self):
        return (len(self.query), len(self.gallery))

    @property
    def device(self):
        return self.query.device

    def block(self, rows):
        return compute_distance_matrix(self.query[rows], self.gallery, self.metric)


def as_distance_source(distances):
    """A ``MatrixDistances`` for a matrix; sources pass through."""
    if isinstance(distances, (MatrixDistances, FeatureDistances)):
        return distances
    return MatrixDistances(distances)


def query_blocks(source, block_elements=None):
    """``(rows, block)`` pairs covering every query, ``block`` being that slice's distances."""
    num_query, num_gallery = source.shape
    for rows in row_slices(num_query, num_gallery, block_elements):
        yield rows, source.block(rows)
