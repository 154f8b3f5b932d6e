"""``direid-pipeline`` / ``tools/run_direid.py``: baseline, stage 1, stage 2, comparison table."""
import direid_plugin  # noqa: F401  (registers the plugin with torchreid)
from direid_plugin.cli.common import one_line_errors, parse_config
from direid_plugin.pipeline import run_pipeline


def main(argv=None):
    cfg = parse_config("pipeline", argv)
    with one_line_errors():
        run_pipeline(cfg)


if __name__ == "__main__":
    main()
