"""DI-REID end to end: toolbox baseline, stage 1 (DDGAN), stage 2 (DFEN), comparison table, swap picture.

Every stage is an ordinary ``run.train`` of the same config with a few keys changed, so the
baseline and DI-REID share data, input size, schedule (``train.*``) and evaluation (``test.*``).
Outputs go under ``data.save_dir``: ``baseline/``, ``stage1/``, ``stage2/`` (each a complete run
folder), ``degradation_swap.jpg``, ``results.md`` and ``results.json``.
"""
import os

from direid_plugin import run
from direid_plugin.config import derive
from direid_plugin.evaluation.tables import comparison_table
from direid_plugin.files import write_json, write_text
from direid_plugin.visualize.dataset_images import same_identity_pairs
from direid_plugin.visualize.swaps import COLUMNS, save_swap_picture


def _stage(cfg, name, overrides):
    """Train one stage; return the engine and its training seconds (all of them, when it resumed)."""
    stage_cfg = derive(cfg, {**overrides, "data.save_dir": os.path.join(cfg.data.save_dir, name)})
    engine = run.train(stage_cfg)
    return engine, engine.clock.seconds()


def _swap_pairs(engine, count):
    """(HR gallery path, LR query path) of the same identity, from the first target's test split."""
    query, gallery = engine.datamanager.fetch_test_loaders(engine.datamanager.targets[0])
    return [(hr[0], lr[0]) for hr, lr in same_identity_pairs(query, gallery, count)]


def run_pipeline(cfg):
    """Run every stage; return ``{label: {"train_seconds", "results": {dataset: metrics}}}``.

    The comparison table is printed and written to results.md, the same data to results.json.
    """
    results, ranks = {}, list(cfg.test.ranks)

    def record(label, engine, seconds):
        results[label] = {"train_seconds": seconds, "results": engine.eval_results}

    if cfg.pipeline.baseline_model:
        engine, seconds = _stage(cfg, "baseline", {
            "model.name": cfg.pipeline.baseline_model, "engine.name": "auto", "loss.name": cfg.pipeline.baseline_loss,
            "model.pretrained_path": cfg.pipeline.baseline_weights,
        })
        record(f"{cfg.pipeline.baseline_model} baseline ({cfg.pipeline.baseline_loss})", engine, seconds)

    height, width = cfg.pipeline.stage1_size or (cfg.data.height, cfg.data.width)
    stage1, seconds1 = _stage(cfg, "stage1", {"model.name": "ddgan", "engine.name": "ddgan",
                                              "data.height": height, "data.width": width})
    record("DDGAN f_inv (stage 1 only)", stage1, seconds1)
    pairs = _swap_pairs(stage1, cfg.pipeline.swap_pairs)
    swap_path = os.path.join(cfg.data.save_dir, "degradation_swap.jpg")
    save_swap_picture(stage1.model, [hr for hr, _ in pairs], [lr for _, lr in pairs], swap_path, height, width)

    stage2, seconds2 = _stage(cfg, "stage2", {"model.name": "dfen", "engine.name": "dfen",
                                              "dfen.ddgan_checkpoint": stage1.last_checkpoint})
    record("DI-REID (stage 1 + DFEN)", stage2, seconds1 + seconds2)

    print("\n" + comparison_table(results, ranks))
    print(f"\nDegradation swaps ({COLUMNS}): {swap_path}")
    write_text(os.path.join(cfg.data.save_dir, "results.md"), comparison_table(results, ranks, tablefmt="github") + "\n")
    write_json(os.path.join(cfg.data.save_dir, "results.json"), results)
    return results
