"""``tools/<command>.py --help`` answers from the argument definitions alone, without importing torch."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("train", "test", "run_direid", "visualize", "export_onnx", "evaluate_stage1", "prepare_data")
PROBE = """
import runpy, sys
path = sys.argv[1]
sys.argv = [path, *sys.argv[2:]]
sys.path.insert(0, __import__("os").path.dirname(path))
try:
    runpy.run_path(path, run_name="__main__")
except SystemExit as e:
    print("exit", e.code)
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("tool", TOOLS)
def test_help_without_torch(tool):
    result = subprocess.run([sys.executable, "-c", PROBE, os.path.join(REPO, "tools", f"{tool}.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith(f"usage: {tool}.py"), result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("exit 0\ntorch imported: False"), result.stdout[-300:]


def test_subcommand_help_without_torch():
    result = subprocess.run([sys.executable, "-c", PROBE, os.path.join(REPO, "tools", "visualize.py"), "space", "-h"],
                            capture_output=True, text=True, timeout=60)
    assert "--per-image PER_IMAGE" in result.stdout and "torch imported: False" in result.stdout
