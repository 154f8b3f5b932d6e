"""Argument parsing and error reporting shared by the commands."""
import contextlib
import os
import sys

from direid_plugin.cli import arguments
from direid_plugin.config import ConfigError, load_config
from direid_plugin.data.image_io import ImageReadError
from direid_plugin.data.manifest import ManifestError
from direid_plugin.engines.guards import TrainingDiverged
from direid_plugin.weights import CheckpointError

DEBUG_ENV = "DIREID_DEBUG"
SKIP_HINT = "; data.skip_bad_images True skips unreadable images (listed in <save_dir>/skipped_images.txt)"
# Problems with the user's files, config or run (not bugs): reported in one line, not a traceback.
# FileNotFoundError covers missing weights and dataset layouts (RawDataError); PermissionError
# an unwritable data.save_dir.
KNOWN_ERRORS = (ConfigError, CheckpointError, ImageReadError, ManifestError, FileNotFoundError, PermissionError,
                TrainingDiverged)


def config_from_args(args):
    """The frozen config that ``add_config_arguments``' arguments name; exits with one clear line on errors."""
    try:
        return load_config(args.config_file or None, args.opts)
    except ConfigError as e:
        sys.exit(f"error: {e}")


def parse_config(command, argv=None):
    """``command``'s ``--config-file FILE [KEY VALUE ...]`` -> frozen config; exits with one clear line on errors."""
    return config_from_args(arguments.parser(command).parse_args(argv))


def one_line(error):
    """The error's message on one line; for an error re-raised from a DataLoader worker, the original one."""
    lines = str(error).strip().splitlines()
    if lines and lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        return lines[-1].split(": ", 1)[-1]  # torch appends the worker's traceback, ending "Type: message"
    return " ".join(lines)


@contextlib.contextmanager
def one_line_errors():
    """Turn ``KNOWN_ERRORS`` into ``error: <message>`` on stderr and exit status 1; DIREID_DEBUG=1 re-raises."""
    try:
        yield
    except KNOWN_ERRORS as e:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        hint = SKIP_HINT if isinstance(e, ImageReadError) and "skip_bad_images" not in str(e) else ""
        sys.exit(f"error: {one_line(e)}{hint}")
