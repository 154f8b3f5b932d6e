"""Shim for `direid-train`: see direid_plugin/cli/train.py."""
from launch import run

if __name__ == "__main__":
    run("train")
