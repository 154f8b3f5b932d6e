"""A sparse matrix as flat (row, column, value) arrays sorted by row then column, in plain torch.

Enough for re-ranking's encoding V: sums of duplicate entries, row and column segments, and the
expansion of segments into one item per stored entry. Plain tensors keep it identical on CPU and
CUDA (torch.sparse's CSR products are still beta and warn).
"""
from dataclasses import dataclass

import torch


def expand_segments(starts, counts, total=None):
    """Owner and position of every item of the segments ``[starts[e], starts[e] + counts[e])``.

    ``total`` is ``counts.sum()`` when the caller knows it (saves a device sync). Both results
    have the dtype of ``starts``.
    """
    total = int(counts.sum()) if total is None else total
    owner = torch.repeat_interleave(
        torch.arange(len(counts), dtype=starts.dtype, device=starts.device), counts, output_size=total
    )
    # item t of segment e sits at starts[e] + (t - number of items of earlier segments)
    shift = starts - (torch.cumsum(counts, 0) - counts).to(starts.dtype)
    return owner, torch.arange(total, dtype=starts.dtype, device=starts.device) + shift[owner]


def cost_batches(costs, budget):
    """Consecutive slices of ``costs`` summing to at most ``budget`` (or one entry, if larger)."""
    ends = torch.cumsum(costs, 0)
    start, spent = 0, 0
    while start < len(costs):
        stop = max(start + 1, int(torch.searchsorted(ends, spent + budget, right=True)))
        yield slice(start, stop)
        spent, start = int(ends[stop - 1]), stop


def _segment_starts(keys, size):
    counts = torch.bincount(keys, minlength=size)
    return torch.cumsum(counts, 0) - counts, counts


@dataclass(frozen=True)
class SparseRows:
    row: torch.Tensor
    column: torch.Tensor
    value: torch.Tensor
    num_rows: int

    @classmethod
    def summed(cls, row, column, value, num_rows, num_columns):
        """From unsorted entries; duplicates of a (row, column) are added up."""
        key, slot = torch.unique(row * num_columns + column, return_inverse=True)
        total = torch.zeros(len(key), dtype=value.dtype, device=value.device).index_add_(0, slot, value)
        return cls(key // num_columns, key % num_columns, total, num_rows)

    def row_segments(self):
        """(start, count) of each row's entries."""
        return _segment_starts(self.row, self.num_rows)

    def rows(self, first, stop):
        """The entries of rows ``first`` to ``stop - 1``, rows renumbered from 0."""
        lo, hi = torch.searchsorted(self.row, torch.tensor([first, stop], device=self.row.device)).tolist()
        return SparseRows(self.row[lo:hi] - first, self.column[lo:hi], self.value[lo:hi], stop - first)

    def by_column(self, num_columns):
        """``(start, count, row, value)``: the entries grouped by column (CSC order)."""
        order = torch.sort(self.column, stable=True).indices
        start, count = _segment_starts(self.column, num_columns)
        return start, count, self.row[order], self.value[order]
