"""Shim for `tools/prepare_data.py`: see direid_plugin/cli/prepare_data.py."""
from launch import run

if __name__ == "__main__":
    run("prepare_data")
