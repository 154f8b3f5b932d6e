"""Every command's argument parser, in a module that imports only the standard library.

The package's ``__init__`` registers the plugin with torchreid (and so imports torch); the tools'
shims load this file by its path instead (tools/launch.py), so ``tools/<command>.py --help``
answers at once. Nothing here may import from ``direid_plugin``.
"""
import argparse

CONFIG_COMMANDS = {
    "train": "Train and evaluate a torchreid or DI-REID model from a config.",
    "test": "Evaluate a checkpoint given in model.load_weights.",
    "pipeline": "Run DI-REID end to end beside a torchreid baseline and print the comparison.",
}


def add_config_arguments(parser):
    """``--config-file FILE`` and trailing ``KEY VALUE`` overrides (read back by ``common.config_from_args``)."""
    parser.add_argument("--config-file", default="", help="YAML config (may name a _BASE_ parent)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="overrides as KEY VALUE pairs, e.g. train.max_epoch 10")
    return parser


def at_least(minimum):
    """An argparse type: an int no smaller than ``minimum``."""
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _visualize():
    parser = argparse.ArgumentParser(description="Pictures of a trained DDGAN or DFEN on real images of a dataset.")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, weights_help, description):
        sub = commands.add_parser(name, help=description, description=description)
        sub.add_argument("--weights", required=True, help=weights_help)
        sub.add_argument("--output-dir", default="", help="where the PNG goes (default <data.save_dir>/pictures)")
        sub.add_argument("--seed", type=int, default=0, help="seed of the image/code draws")
        return sub

    ddgan_weights = "stage-1 DDGAN checkpoint (<save_dir>/ddgan/model.pth.tar-<iteration>)"
    sub = command("swap", ddgan_weights, "degradation-swap matrix: row i content of image i, column j degradation of image j")
    sub.add_argument("--num-identities", type=at_least(1), default=4,
                     help="identities shown; each gives its gallery (HR) and query (LR) image")
    sub = command("replay", ddgan_weights, "one image re-rendered with degradation codes drawn from a bank of real codes")
    sub.add_argument("--image", default="", help="image file to re-render (default: the first query image)")
    sub.add_argument("--num-codes", type=at_least(1), default=8, help="codes drawn from the bank")
    sub.add_argument("--bank-size", type=at_least(0), default=64, help="training images in the bank (0 = all)")
    sub = command("ranked", "DFEN (stage 2) or DDGAN (stage 1, f_inv) checkpoint",
                  "ranked lists of query images with each image's D_d degradation score")
    sub.add_argument("--ddgan-weights", default="",
                     help="stage-1 DDGAN checkpoint whose D_d scores the images (default: the model's own D_d)")
    sub.add_argument("--num-queries", type=at_least(1), default=6, help="query rows")
    sub.add_argument("--topk", type=at_least(0), default=0, help="gallery images per row (0 = test.visrank_topk)")
    sub = command("space", ddgan_weights, "PCA of degradation codes of images degraded by a known amount")
    sub.add_argument("--kind", default=None, metavar="KIND",
                     help="a degradation kind (a degradation.kinds name), its range from degradation.* "
                          "(default: degradation.kinds[0])")
    sub.add_argument("--num-images", type=at_least(3), default=120, help="gallery images degraded and encoded")
    sub.add_argument("--per-image", type=at_least(1), default=1,
                     help="degraded copies of each image; above 1, each image's mean code is subtracted before the PCA")
    sub.add_argument("--head", choices=("real", "self"), default="real",
                     help="E_d head: real (as swaps and memory replay use) or self (E'_d, trained on self-degradations)")
    for sub in commands.choices.values():
        add_config_arguments(sub)
    return parser


def _export_onnx():
    parser = argparse.ArgumentParser(description="Export a DFEN (test feature) or DDGAN (encoders + decoder) "
                                                 "checkpoint to ONNX with a dynamic batch size.")
    parser.add_argument("--weights", required=True, help="DFEN (stage 2) or DDGAN (stage 1) checkpoint")
    parser.add_argument("--output-dir", default="", help="where the .onnx files go (default <data.save_dir>/onnx)")
    return add_config_arguments(parser)


def _evaluate_stage1():
    parser = argparse.ArgumentParser(description="Stage-1 (DDGAN) checkpoints measured on held-out test images.")
    parser.add_argument("--weights", action="append", help="a DDGAN checkpoint (<save_dir>/ddgan/model.pth.tar-<it>); repeatable")
    parser.add_argument("--checkpoint-dir", default="", help="every DDGAN checkpoint in this folder (<save_dir>/ddgan)")
    parser.add_argument("--num-images", type=int, default=120, help="gallery images of the degradation space")
    parser.add_argument("--factor-range", type=float, nargs=2, default=(1.0, 4.0), metavar=("LOW", "HIGH"),
                        help="down-sampling factors of the degradation space (default: clean to MLR's 4)")
    parser.add_argument("--per-image", type=int, default=4, help="degraded copies per image of the per-image space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="", help="also write the table as JSON here")
    return add_config_arguments(parser)


def _prepare_data():
    parser = argparse.ArgumentParser(description="Build and verify the cache of a degraded Re-ID dataset.")
    parser.add_argument("name", help="a registered dataset name (the README's dataset table; a wrong one lists them)")
    parser.add_argument("--root", required=True, help="data root (as ImageDataManager's root)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and degradations (default 0)")
    parser.add_argument("--verify-only", action="store_true", help="check an existing cache; never build")
    return parser


BUILDERS = {"visualize": _visualize, "export_onnx": _export_onnx, "evaluate_stage1": _evaluate_stage1,
            "prepare_data": _prepare_data}


def parser(command):
    """The argument parser of ``command`` (a module name under direid_plugin/cli)."""
    if command in CONFIG_COMMANDS:
        return add_config_arguments(argparse.ArgumentParser(description=CONFIG_COMMANDS[command]))
    return BUILDERS[command]()
