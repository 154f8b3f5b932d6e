"""Shim for `direid-evaluate-stage1`: see direid_plugin/cli/evaluate_stage1.py."""
from direid_plugin.cli.evaluate_stage1 import main

if __name__ == "__main__":
    main()
