"""Shim for `direid-visualize`: see direid_plugin/cli/visualize.py."""
from direid_plugin.cli.visualize import main

if __name__ == "__main__":
    main()
