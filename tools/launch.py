"""What every command shim in tools/ runs: ``--help`` from the argument definitions alone, else the command.

The package's ``__init__`` imports torch (it registers the plugin with torchreid), which takes
seconds; direid_plugin/cli/arguments.py imports only the standard library, so it is loaded by its
path, without the package, to answer ``-h`` / ``--help`` at once. Standard library only here too.
"""
import importlib
import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELP_FLAGS = {"-h", "--help"}


def _arguments():
    path = os.path.join(REPO, "direid_plugin", "cli", "arguments.py")
    spec = importlib.util.spec_from_file_location("direid_cli_arguments", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(command):
    """Run ``direid_plugin.cli.<command>.main`` with the process's arguments; exit with its status."""
    if HELP_FLAGS & set(sys.argv[1:]):
        _arguments().parser(command).parse_args(sys.argv[1:])  # prints the help and exits
    status = importlib.import_module(f"direid_plugin.cli.{command}").main()
    sys.exit(status if isinstance(status, int) else 0)  # commands return their result or an exit status
