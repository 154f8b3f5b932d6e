"""Shim for `direid-export-onnx`: see direid_plugin/cli/export_onnx.py."""
from direid_plugin.cli.export_onnx import main

if __name__ == "__main__":
    main()
