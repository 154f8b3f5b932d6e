"""Shim for `direid-export-onnx`: see direid_plugin/cli/export_onnx.py."""
from launch import run

if __name__ == "__main__":
    run("export_onnx")
