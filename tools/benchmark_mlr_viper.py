"""Real-data benchmark: DI-REID vs the torchreid baseline on MLR-VIPeR (LR and clean queries).

For each requested split, runs the end-to-end pipeline (direid_plugin/pipeline.py) of
configs/benchmarks/mlr_viper_osnet.yaml: the baseline and DI-REID share data, input size, schedule
and the single-shot evaluation. Prints R1/R5/R10/mAP as mean ± std over the splits and the wall
time of each model, with the ratio of DI-REID's time to the baseline's (measured in the same run).

    python tools/benchmark_mlr_viper.py --splits 0            # a quick look (one split)
    python tools/benchmark_mlr_viper.py --splits 0,1,2        # three splits
    python tools/benchmark_mlr_viper.py                       # all 10 splits
    python tools/benchmark_mlr_viper.py --splits 0 train.max_epoch 20   # config overrides
    python tools/benchmark_mlr_viper.py --splits 0 --validation   # held-out training identities
    python tools/benchmark_mlr_viper.py --splits 0,1,2 --reuse model.resume auto   # across sessions

A split run stopped part-way (a session's end) continues with ``model.resume auto``; its training
times include the stopped part, which checkpoints record. ``--reuse`` summarises a split whose
``split<N>/results.json`` exists (a finished pipeline) from that file instead of running it again.

--validation runs the same protocol on the ``<dataset>_val`` datasets: 100 of each split's 316
training identities take the test role and the models train on the other 216. Compare
configurations there; the split's test identities are then used once, for the chosen one.
"""
import argparse
import json
import os

import numpy as np

import direid_plugin  # noqa: F401
from direid_plugin.config import derive, load_config
from direid_plugin.data.datasets import VALIDATION_IDS, validation_name
from direid_plugin.evaluation.tables import paired_differences_table, splits_table, time_ratios
from direid_plugin.files import write_json
from direid_plugin.pipeline import run_pipeline

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "benchmarks", "mlr_viper_osnet.yaml")
RANKS = (1, 5, 10)


def validation_config(cfg):
    """``cfg`` on the ``<name>_val`` variant of every source and target, saving beside the test run."""
    try:
        sources, targets = ([validation_name(n) for n in names] for names in (cfg.data.sources, cfg.data.targets))
    except ValueError as e:
        raise SystemExit(f"--validation: {e}") from None
    return derive(cfg, {"data.sources": sources, "data.targets": targets,
                        "data.save_dir": cfg.data.save_dir.rstrip("/") + "_validation"})


def _baseline_and_direid(split_results):
    """Labels of the first (the toolbox baseline) and last (DI-REID end to end) pipeline rows."""
    labels = list(split_results)
    return labels[0], labels[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=CONFIG)
    parser.add_argument("--splits", default=",".join(map(str, range(10))), help="comma-separated split ids")
    parser.add_argument("--validation", action="store_true",
                        help="evaluate on held-out training identities (<dataset>_val) instead of the test identities")
    parser.add_argument("--reuse", action="store_true",
                        help="read a split's results from split<N>/results.json when that file exists instead of re-running it")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args(argv)
    cfg = load_config(args.config_file, args.opts)
    args.splits = [int(s) for s in args.splits.split(",")]
    if args.validation:
        cfg = validation_config(cfg)

    per_split = []
    for split in args.splits:
        split_cfg = derive(cfg, {"data.split_id": split, "data.save_dir": os.path.join(cfg.data.save_dir, f"split{split}")})
        finished = os.path.join(split_cfg.data.save_dir, "results.json")
        if args.reuse and os.path.exists(finished):
            print(f"=> split {split}: reusing {finished}")
            with open(finished) as f:
                per_split.append(json.load(f))
        else:
            per_split.append(run_pipeline(split_cfg))

    protocol = (f"validation identities ({VALIDATION_IDS} held out of each split's training identities)"
                if args.validation else "test identities")
    print(f"\nMLR-VIPeR {protocol}, splits {args.splits}, single-shot ({cfg.test.single_shot_trials} trials), "
          "mean ± std (population) over splits")
    print(splits_table(per_split, RANKS))
    baseline, direid = _baseline_and_direid(per_split[0])
    print("\nDI-REID minus baseline per split (points; R1 and mAP) and DI-REID's train time / the baseline's:")
    print(paired_differences_table(per_split, args.splits, direid, baseline))
    ratio = float(np.mean(time_ratios(per_split, direid, baseline)))
    print(f"DI-REID train time / baseline train time: {ratio:.2f}x")
    write_json(os.path.join(cfg.data.save_dir, "benchmark.json"), {"splits": args.splits, "per_split": per_split, "time_ratio": ratio})


if __name__ == "__main__":
    main()
