"""Train and test runs driven by a config: data, model, engine, results table, output folder.

The CLI (``direid_plugin/cli``, ``tools/train.py``, ``tools/test.py``) is a thin shell over
``train(cfg)`` and ``test(cfg)``; other tools (the end-to-end pipeline, benchmarks) call them too.
"""
import contextlib
import json
import os
import sys
import time

import torch
from tabulate import tabulate

import torchreid
from torchreid.reid.utils import set_random_seed

from direid_plugin.checkpoint import CheckpointError, load_checkpoint, model_state, state_dict_mismatch
from direid_plugin.data.datamanager import build_checked_datamanager, report_skipped_images
from direid_plugin.config import ConfigError
from direid_plugin.engines.builder import build_engine, engine_name
from direid_plugin.engines.checkpointing import TrainingClock, resume_engine
from direid_plugin.registry import model_factory
from direid_plugin.models import MODEL_CONFIG_KWARGS


def use_gpu(cfg):
    return bool(cfg.use_gpu) and torch.cuda.is_available()


def imagedata_kwargs(cfg):
    return dict(
        root=cfg.data.root,
        sources=list(cfg.data.sources),
        targets=list(cfg.data.targets),
        height=cfg.data.height,
        width=cfg.data.width,
        transforms=list(cfg.data.transforms),
        k_tfm=cfg.data.k_tfm,
        norm_mean=list(cfg.data.norm_mean),
        norm_std=list(cfg.data.norm_std),
        use_gpu=use_gpu(cfg),
        split_id=cfg.data.split_id,
        combineall=cfg.data.combineall,
        load_train_targets=cfg.data.load_train_targets,
        batch_size_train=cfg.train.batch_size,
        batch_size_test=cfg.test.batch_size,
        workers=cfg.data.workers,
        num_instances=cfg.sampler.num_instances,
        num_cams=cfg.sampler.num_cams,
        num_datasets=cfg.sampler.num_datasets,
        train_sampler=cfg.sampler.train_sampler,
        train_sampler_t=cfg.sampler.train_sampler_t,
    )


def build_datamanager(cfg):
    if cfg.data.skip_bad_images:
        return build_checked_datamanager(**imagedata_kwargs(cfg))
    return torchreid.reid.data.ImageDataManager(**imagedata_kwargs(cfg))


def build_model(cfg, num_classes):
    """Build ``model.name`` through torchreid's factory, then load local weights if given.

    Plugin models take extra architecture options from their config node; stock models get
    torchreid's four arguments only.
    """
    factory = model_factory().get(cfg.model.name)
    if factory is None:
        raise ConfigError(f"model.name: unknown model '{cfg.model.name}'; run torchreid.models.show_avai_models()")
    extra = MODEL_CONFIG_KWARGS[cfg.model.name](cfg) if cfg.model.name in MODEL_CONFIG_KWARGS else {}
    model = factory(
        num_classes=num_classes, loss=cfg.loss.name, pretrained=cfg.model.pretrained, use_gpu=use_gpu(cfg), **extra
    )
    for path in (cfg.model.pretrained_path, cfg.model.load_weights):
        if path:
            load_weights_report(model, path)
    return model


def load_weights_report(model, path):
    """Non-strict load of a torchreid-format state dict; print what matched and what did not.

    Non-strict by design (a Re-ID checkpoint's classifier rarely fits another dataset), but a file
    of which nothing fits is an error naming it: it belongs to another model.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path} (model.pretrained_path / model.load_weights)")
    loaded = model_state(load_checkpoint(path), path)
    current = model.state_dict()
    changed = [k for k, v in loaded.items() if k in current and torch.is_tensor(v) and v.shape == current[k].shape]
    if not changed:
        raise CheckpointError(f"{path}: no tensor fits {type(model).__name__} ({state_dict_mismatch(current, loaded)}); "
                              "is it a checkpoint of another model.name?")
    model.load_state_dict({k: loaded[k] for k in changed}, strict=False)
    unchanged = [k for k in current if k not in changed and current[k].dtype.is_floating_point]
    print(f'=> Loaded "{path}": {len(changed)} tensors set, {len(unchanged)} float tensors left at init'
          + (f" ({state_dict_mismatch(current, loaded)})" if unchanged else ""))
    return changed, unchanged


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
    with open(os.path.join(save_dir, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    console = sys.stdout
    log_path = os.path.join(save_dir, f"{prefix}.log-{time.strftime('%Y-%m-%d-%H-%M-%S')}")
    with open(log_path, "w", encoding="utf-8") as log_file:
        sys.stdout = _Tee(console, log_file)
        try:
            yield
        finally:
            sys.stdout = console


def results_rows(engine, label, ranks):
    """One row per evaluated dataset: label, dataset, protocol, CMC at ``ranks``, mAP and mINP, in
    percent (NaN: a rank past the CMC, or no mINP from torchreid's evaluator)."""
    rows = []
    for dataset, result in getattr(engine, "eval_results", {}).items():
        mINP = result.get("mINP")
        rows.append([label, dataset, result["protocol"]]
                    + [100 * result.get(f"rank{r}", float("nan")) for r in ranks]
                    + [100 * result["mAP"], float("nan") if mINP is None else 100 * mINP])
    return rows


def result_headers(ranks):
    return ["model", "dataset", "protocol"] + [f"R{r}" for r in ranks] + ["mAP", "mINP"]


def write_results(cfg, engine, label):
    ranks = list(cfg.test.ranks)
    rows = results_rows(engine, label, ranks)
    table = tabulate(rows, headers=result_headers(ranks), floatfmt=".1f")
    print(table)
    with open(os.path.join(cfg.data.save_dir, "results.json"), "w") as f:
        json.dump({"model": label, "results": engine.eval_results}, f, indent=1)
    return table


def _setup(cfg):
    set_random_seed(cfg.train.seed)
    datamanager = build_datamanager(cfg)
    model = build_model(cfg, datamanager.num_train_pids)
    if use_gpu(cfg):
        model = model.cuda()
    engine = build_engine(cfg, datamanager, model, use_gpu(cfg))
    return engine


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
        engine = _setup(cfg)
        engine.clock = clock
        start_epoch = resume_engine(engine, cfg.model.resume, cfg.data.save_dir) if cfg.model.resume else cfg.train.start_epoch
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
        raise ValueError("model.load_weights: give the checkpoint to evaluate (e.g. log/model/model.pth.tar-60)")
    with _output_folder(cfg, "test"):
        engine = _setup(cfg)
        engine.run(test_only=True, **_run_kwargs(cfg))
        write_results(cfg, engine, f"{cfg.model.name} ({os.path.basename(cfg.model.load_weights)})")
        report_skipped_images(engine.datamanager, cfg.data.save_dir)
    return engine
