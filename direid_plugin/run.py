"""Train and test runs driven by a config: the output folder, the engine's run, the results table.

The CLI (``direid_plugin/cli``, ``tools/train.py``, ``tools/test.py``) is a thin shell over
``train(cfg)`` and ``test(cfg)``; other tools (the end-to-end pipeline, benchmarks) call them too.
"""
import contextlib
import os
import sys
import time

from direid_plugin.build import build_run, engine_name
from direid_plugin.config import ConfigError
from direid_plugin.data.datamanager import SKIPPED_FILE, report_skipped_images
from direid_plugin.engines.checkpointing import TrainingClock
from direid_plugin.evaluation.tables import run_table
from direid_plugin.files import write_json, write_text


class _Tee:
    """stdout that also goes to the run's log file (torchreid's Logger closes the console on GC)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()

    def isatty(self):
        return False


def output_name(kind, name):
    """A run's file ``name`` (config.yaml, results.json, ...): a test run's carry a ``test_`` prefix,
    so testing in a training run's folder never overwrites what the training wrote."""
    return name if kind == "train" else f"{kind}_{name}"


@contextlib.contextmanager
def _output_folder(cfg, prefix):
    """Check data.save_dir is writable, save the config there and tee stdout into a log file."""
    save_dir = cfg.data.save_dir
    try:
        os.makedirs(save_dir, exist_ok=True)
        probe = os.path.join(save_dir, ".write-test")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise PermissionError(f"data.save_dir: cannot write to {save_dir} ({e.strerror}); choose a writable folder") from None
    write_text(os.path.join(save_dir, output_name(prefix, "config.yaml")), cfg.dump())
    console = sys.stdout
    log_path = os.path.join(save_dir, f"{prefix}.log-{time.strftime('%Y-%m-%d-%H-%M-%S')}")
    with open(log_path, "w", encoding="utf-8") as log_file:
        sys.stdout = _Tee(console, log_file)
        try:
            yield
        finally:
            sys.stdout = console


def write_results(cfg, engine, label, kind="train"):
    """Print the run's results table and write ``results.json`` (``test_results.json`` for a test
    run) into ``data.save_dir``."""
    table = run_table(engine.eval_results, label, list(cfg.test.ranks))
    print(table)
    write_json(os.path.join(cfg.data.save_dir, output_name(kind, "results.json")),
               {"model": label, "results": engine.eval_results})
    return table


def _run_kwargs(cfg):
    return dict(
        save_dir=cfg.data.save_dir,
        print_freq=cfg.train.print_freq,
        fixbase_epoch=cfg.train.fixbase_epoch,
        open_layers=list(cfg.train.open_layers),
        start_eval=cfg.test.start_eval,
        eval_freq=cfg.test.eval_freq,
        dist_metric=cfg.test.dist_metric,
        normalize_feature=cfg.test.normalize_feature,
        visrank=cfg.test.visrank,
        visrank_topk=cfg.test.visrank_topk,
        use_metric_cuhk03=cfg.test.use_metric_cuhk03,
        ranks=list(cfg.test.ranks),
        rerank=cfg.test.rerank,
    )


def train(cfg):
    """Train ``model.name`` with ``engine.name``, evaluate on the targets, print the results table."""
    with _output_folder(cfg, "train"):
        clock = TrainingClock()  # started before the data are built, as a user's stopwatch would be
        engine = build_run(cfg, clock)
        start_epoch = engine.resume(cfg.model.resume, cfg.data.save_dir) if cfg.model.resume else cfg.train.start_epoch
        kwargs = _run_kwargs(cfg)
        kwargs.update(visrank=False)  # torchreid only draws ranked lists in test-only runs
        # torchreid prints every print_freq batches: with fewer batches per epoch it would print nothing.
        kwargs.update(print_freq=min(cfg.train.print_freq, max(1, len(engine.train_loader))))
        engine.run(max_epoch=cfg.train.max_epoch, start_epoch=start_epoch, **kwargs)
        write_results(cfg, engine, f"{cfg.model.name} ({engine_name(cfg)})")
        report_skipped_images(engine.datamanager, cfg.data.save_dir)
    return engine


def test(cfg):
    """Evaluate ``model.load_weights`` on the targets and print the results table."""
    if not cfg.model.load_weights:
        raise ConfigError("model.load_weights is empty: give the checkpoint to evaluate, e.g. model.load_weights "
                          "log/model/model.pth.tar-60")
    with _output_folder(cfg, "test"):
        engine = build_run(cfg)
        engine.run(test_only=True, **_run_kwargs(cfg))
        write_results(cfg, engine, f"{cfg.model.name} ({os.path.basename(cfg.model.load_weights)})", "test")
        report_skipped_images(engine.datamanager, cfg.data.save_dir, output_name("test", SKIPPED_FILE))
    return engine
