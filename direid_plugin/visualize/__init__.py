"""Pictures, one module per kind: swap grids and matrices (swaps), memory-replay sheets (replay),
ranked lists with degradation scores (ranked), degradation-space plots (space)."""
