"""Shim for `direid-pipeline`: see direid_plugin/cli/pipeline.py."""
from direid_plugin.cli.pipeline import main

if __name__ == "__main__":
    main()
