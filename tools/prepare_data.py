"""Shim for `tools/prepare_data.py`: see direid_plugin/cli/prepare_data.py."""
from direid_plugin.cli.prepare_data import main

if __name__ == "__main__":
    raise SystemExit(main())
