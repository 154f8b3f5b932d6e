"""Pictures: degradation-swap grids, replay sheets (ranked lists come from torchreid)."""
