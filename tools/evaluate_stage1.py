"""Shim for `direid-evaluate-stage1`: see direid_plugin/cli/evaluate_stage1.py."""
from launch import run

if __name__ == "__main__":
    run("evaluate_stage1")
