"""``direid-export-onnx`` / ``tools/export_onnx.py``: ONNX graphs of a DFEN or DDGAN checkpoint.

A DFEN checkpoint gives ``dfen.onnx`` (image -> test feature); a DDGAN checkpoint gives its content
encoder, degradation encoder and decoder (direid_plugin/export/onnx.py). The architecture comes
from the config, the input size from ``data.height`` x ``data.width``; the batch size is dynamic.
Files go to ``--output-dir`` (default ``<data.save_dir>/onnx``).
"""
import importlib.util
import os
import sys

import direid_plugin  # noqa: F401  (registers the plugin with torchreid)
from direid_plugin.cli import arguments
from direid_plugin.cli.common import config_from_args, one_line_errors
from direid_plugin.export.onnx import graph_signature
from direid_plugin.models.trained import load_trained_model
from direid_plugin.registry import PLUGIN_MODELS


def export(cfg, args):
    """``{graph name: path}`` of the exported graphs."""
    model, name = load_trained_model(cfg, args.weights, ("dfen", "ddgan"))
    output_dir = args.output_dir or os.path.join(cfg.data.save_dir, "onnx")
    paths = PLUGIN_MODELS[name].exporter()(model, output_dir, cfg)
    for graph, path in paths.items():
        print(f"=> {graph}: {graph_signature(path)}: {path}")
    return paths


def main(argv=None):
    args = arguments.parser("export_onnx").parse_args(argv)
    cfg = config_from_args(args)
    if importlib.util.find_spec("onnx") is None:
        sys.exit("error: ONNX export needs the onnx package: pip install -e '.[export]' (or pip install onnx)")
    with one_line_errors():
        return export(cfg, args)


if __name__ == "__main__":
    main()
