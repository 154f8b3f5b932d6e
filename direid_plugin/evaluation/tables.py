"""Every Re-ID results table the plugin prints or writes, built here from engines' ``eval_results``.

* ``run_table``: one run, one row per evaluated dataset (``tools/train.py`` / ``tools/test.py``);
* ``comparison_table``: several runs on the same data, with their training time (the pipeline);
* ``splits_table``: R-k and mAP as mean ± std over splits (population std), per model and dataset;
* ``paired_differences_table``: one model minus another on the same splits (benchmarks);
* ``corruption_tables``: the corruption benchmark's (clean vs corrupted, mCE, per corruption).

Metrics are fractions in ``eval_results`` and percentages in tables.
"""
import numpy as np
from tabulate import tabulate

from direid_plugin.data.corruptions import FAMILIES
from direid_plugin.evaluation.corruption_metrics import METRICS, by_corruption, severity_mean
from direid_plugin.evaluation.single_shot import DEFAULT_RANKS, rank_at, summarise_splits


def run_headers(ranks):
    return ["model", "dataset", "protocol"] + [f"R{r}" for r in ranks] + ["mAP", "mINP"]


def run_rows(eval_results, label, ranks):
    """One row per evaluated dataset: label, dataset, protocol, CMC at ``ranks``, mAP and mINP, in
    percent (NaN: a rank past the CMC, or no mINP from torchreid's evaluator)."""
    rows = []
    for dataset, result in eval_results.items():
        mINP = result.get("mINP")
        rows.append([label, dataset, result["protocol"]]
                    + [100 * result.get(f"rank{r}", float("nan")) for r in ranks]
                    + [100 * result["mAP"], float("nan") if mINP is None else 100 * mINP])
    return rows


def run_table(eval_results, label, ranks, tablefmt="simple"):
    return tabulate(run_rows(eval_results, label, ranks), headers=run_headers(ranks), floatfmt=".1f", tablefmt=tablefmt)


def comparison_table(runs, ranks, tablefmt="simple"):
    """``runs``: ``{label: {"train_seconds": s, "results": eval_results}}``, one row per run and dataset."""
    rows = [row + [run["train_seconds"]] for label, run in runs.items()
            for row in run_rows(run["results"], label, ranks)]
    return tabulate(rows, headers=run_headers(ranks) + ["train time (s)"], floatfmt=".1f", tablefmt=tablefmt)


def splits_table(per_split, ranks=DEFAULT_RANKS, tablefmt="github"):
    """``per_split``: one ``{label: {"train_seconds", "results": {dataset: metrics}}}`` per split.

    Every model and dataset: R-k and mAP as 'mean ± std' over the splits, and the mean train minutes.
    """
    rows = []
    for label in per_split[0]:
        seconds = [split[label]["train_seconds"] for split in per_split]
        for dataset in per_split[0][label]["results"]:
            summary = summarise_splits([split[label]["results"][dataset] for split in per_split], ranks)
            rows.append([label, dataset] + [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in summary.values()]
                        + [f"{np.mean(seconds) / 60:.1f}"])
    headers = ["model", "queries", *(f"R{r}" for r in ranks), "mAP", "train min"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def time_ratios(per_split, ours, theirs):
    """``ours``' training time over ``theirs``, split by split (both measured in that split's run)."""
    return [split[ours]["train_seconds"] / split[theirs]["train_seconds"] for split in per_split]


def paired_differences_table(per_split, split_ids, ours, theirs, tablefmt="github"):
    """``ours`` minus ``theirs`` on the same split, per dataset (R1 and mAP in points), with the time
    ratio, one row per split and a mean row."""
    datasets = list(per_split[0][theirs]["results"])
    rows = []
    for split_id, split, ratio in zip(split_ids, per_split, time_ratios(per_split, ours, theirs)):
        row = [str(split_id)]
        for dataset in datasets:
            a, b = split[ours]["results"][dataset], split[theirs]["results"][dataset]
            row += [100 * (rank_at(a["cmc"], 1) - rank_at(b["cmc"], 1)), 100 * (a["mAP"] - b["mAP"])]
        rows.append(row + [ratio])
    rows.append(["mean"] + [float(np.mean(column)) for column in list(zip(*rows))[1:]])
    headers = ["split"] + [f"{d} {m}" for d in datasets for m in ("dR1", "dmAP")] + ["time ratio"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, floatfmt=("",) + ("+.1f",) * 2 * len(datasets) + (".2f",))


def _pct(value):
    return round(100.0 * value, 1)


def clean_vs_corrupted_table(results, summary, tablefmt):
    headers = ["model", "mode", "clean R1", "mAP", "mINP", "random R1", "mAP", "mINP", "20x5 mean R1", "mAP", "mINP"]
    rows = [[label, mode, *(_pct(result["clean"][m]) for m in METRICS),
             *(_pct(summary[label][mode][f"random_{m}"]) for m in METRICS),
             *(_pct(summary[label][mode][f"corrupted_{m}"]) for m in METRICS)]
            for label, result in results.items() for mode in result["modes"]]
    return tabulate(rows, headers, tablefmt=tablefmt)


def mce_table(summary, tablefmt):
    keys = ("mCE_rank1", "mCE_mAP", "relative_mCE_rank1", "relative_mCE_mAP")
    headers = ["model", "mode", "mCE (R1)", "mCE (mAP)", "relative mCE (R1)", "relative mCE (mAP)"]
    rows = [[label, mode, *(round(row[k], 1) for k in keys)] for label, by_mode in summary.items()
            for mode, row in by_mode.items()]
    return tabulate(rows, headers, tablefmt=tablefmt)


def per_corruption_table(results, mode, corruptions, tablefmt):
    """Rows: corruptions (with their family) and clean; columns: each model's R1 / mAP / mINP
    averaged over the severities."""
    means = {label: {m: severity_mean(by_corruption(r["modes"][mode], m)) for m in METRICS}
             for label, r in results.items()}
    family = {c: f for f, names in FAMILIES.items() for c in names}
    headers = ["corruption", "family"] + [f"{label} {name}" for label in results for name in ("R1", "mAP", "mINP")]
    rows = [[c, family[c], *(_pct(means[label][m][c]) for label in results for m in METRICS)] for c in corruptions]
    rows.append(["clean", "", *(_pct(r["clean"][m]) for r in results.values() for m in METRICS)])
    return tabulate(rows, headers, tablefmt=tablefmt)


def corruption_tables(results, summary, reference, corruptions, severities, tablefmt="simple"):
    """``[(title, table)]`` of a corruption benchmark run (evaluation/corruption_metrics.py's results
    and ``summaries``); metrics in percent."""
    modes = list(next(iter(results.values()))["modes"])
    parts = [("Clean vs corrupted (R1 / mAP / mINP, %; '20x5 mean': the mean over the corruptions and severities "
              "evaluated; 'random': each image one random corruption and level)",
              clean_vs_corrupted_table(results, summary, tablefmt)),
             (f"Mean corruption error against {reference} (100 = the reference's errors; lower is better)",
              mce_table(summary, tablefmt))]
    parts += [(f"Per corruption, mode '{mode}' (%, mean over severities {list(severities)})",
               per_corruption_table(results, mode, corruptions, tablefmt)) for mode in modes]
    return parts
