"""Command-line entry points (also installed as console scripts)."""
