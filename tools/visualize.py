"""Shim for `direid-visualize`: see direid_plugin/cli/visualize.py."""
from launch import run

if __name__ == "__main__":
    run("visualize")
