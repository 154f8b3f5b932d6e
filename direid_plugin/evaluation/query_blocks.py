"""Distances with their query / gallery labels, walked one block of queries at a time.

Every ranking metric starts from the same two masks per block: which gallery items share the
query's identity, and which of those also share its camera. torchreid drops the latter from
the query's ranking (same person seen by the same camera is not a re-identification).
"""
from dataclasses import dataclass

import numpy as np
import torch

from direid_plugin.evaluation.distances import as_distance_source, query_blocks


class NoValidQueryError(AssertionError, ValueError):
    """No query has a true match left in the gallery.

    An AssertionError like torchreid's ``assert num_valid_q > 0`` (callers written for torchreid
    keep working), and a ValueError because that is what it is.
    """


@dataclass(frozen=True)
class QueryBlock:
    rows: slice                # query indices of the block
    distances: torch.Tensor    # (rows, num_gallery)
    is_match: torch.Tensor     # gallery item has the query's pid
    removed: torch.Tensor      # ... and the query's camera: not part of the query's ranking

    @property
    def kept(self):
        return ~self.removed


def _label_tensor(values, name, size, device):
    if torch.is_tensor(values):
        tensor = values.reshape(-1).to(device)
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(values).reshape(-1))).to(device)
    if tensor.numel() != size:
        raise ValueError(f"{name} has {tensor.numel()} entries, the distances need {size}")
    return tensor


class LabelledDistances:
    """A distance source (matrix or features, see distances.py) with pids and camera ids on its device."""

    def __init__(self, distances, q_pids, g_pids, q_camids, g_camids):
        self.source = as_distance_source(distances)
        num_query, num_gallery = self.source.shape
        device = self.source.device
        self.q_pids = _label_tensor(q_pids, "q_pids", num_query, device)
        self.g_pids = _label_tensor(g_pids, "g_pids", num_gallery, device)
        self.q_camids = _label_tensor(q_camids, "q_camids", num_query, device)
        self.g_camids = _label_tensor(g_camids, "g_camids", num_gallery, device)
        if num_query == 0 or num_gallery == 0:
            raise NoValidQueryError(f"Error: empty query or gallery (distances shape {self.source.shape})")

    @property
    def shape(self):
        return self.source.shape

    @property
    def device(self):
        return self.source.device

    def blocks(self, block_elements=None):
        for rows, distances in query_blocks(self.source, block_elements):
            is_match = self.q_pids[rows, None] == self.g_pids
            removed = is_match & (self.q_camids[rows, None] == self.g_camids)
            yield QueryBlock(rows, distances, is_match, removed)
