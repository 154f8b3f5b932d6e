"""Argument parsing shared by the train and test commands."""
import argparse
import sys

from direid_plugin.config import ConfigError, load_config


def parse_config(description, argv=None):
    """``--config-file FILE [KEY VALUE ...]`` -> frozen config; exits with one clear line on errors."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config-file", default="", help="YAML config (may name a _BASE_ parent)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="overrides as KEY VALUE pairs, e.g. train.max_epoch 10")
    args = parser.parse_args(argv)
    try:
        return load_config(args.config_file or None, args.opts)
    except ConfigError as e:
        sys.exit(f"config error: {e}")
