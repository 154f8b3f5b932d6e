"""``direid-test`` / ``tools/test.py``: evaluate a checkpoint (``model.load_weights``)."""
import direid_plugin  # noqa: F401  (registers the plugin with torchreid)
from direid_plugin import run
from direid_plugin.cli.common import one_line_errors, parse_config


def main(argv=None):
    cfg = parse_config("test", argv)
    with one_line_errors():
        run.test(cfg)


if __name__ == "__main__":
    main()
