"""Shim for `direid-test`: see direid_plugin/cli/test.py."""
from direid_plugin.cli.test import main

if __name__ == "__main__":
    main()
