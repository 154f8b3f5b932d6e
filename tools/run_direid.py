"""Shim for `direid-pipeline`: see direid_plugin/cli/pipeline.py."""
from launch import run

if __name__ == "__main__":
    run("pipeline")
