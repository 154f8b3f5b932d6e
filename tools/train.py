"""Shim for `direid-train`: see direid_plugin/cli/train.py."""
from direid_plugin.cli.train import main

if __name__ == "__main__":
    main()
