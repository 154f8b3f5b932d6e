"""Results tables (evaluation/tables.py): the cells every command and benchmark prints."""
import math

from direid_plugin.evaluation.tables import comparison_table, run_rows, splits_table


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _run(seconds, rank1, mAP, mINP=0.3):
    return {"train_seconds": seconds,
            "results": {"lr": {"protocol": "single_shot", "rank1": rank1, "cmc": [rank1, 1.0], "mAP": mAP, "mINP": mINP}}}


def test_run_rows_in_percent_with_nan_for_missing_ranks_and_mINP():
    results = {"lr": {"protocol": "standard", "rank1": 0.25, "rank5": 0.5, "mAP": 0.4, "mINP": None}}
    row = run_rows(results, "m", [1, 5, 10])[0]
    assert row[:5] == ["m", "lr", "standard", 25.0, 50.0]
    assert math.isnan(row[5]) and row[6] == 40.0 and math.isnan(row[7])


def test_comparison_table_has_one_row_per_run_and_its_time():
    table = comparison_table({"baseline": _run(12.0, 0.4, 0.5), "DI-REID": _run(80.0, 0.6, 0.7)}, [1], tablefmt="github")
    lines = table.splitlines()
    assert _cells(lines[0])[-1] == "train time (s)"
    assert _cells(lines[2]) == ["baseline", "lr", "single_shot", "40.0", "50.0", "30.0", "12.0"]
    assert _cells(lines[3]) == ["DI-REID", "lr", "single_shot", "60.0", "70.0", "30.0", "80.0"]


def test_splits_table_cells_are_mean_and_population_std():
    per_split = [{"DI-REID": {"train_seconds": 60.0, "results": {"lr": {"cmc": [0.2, 0.5, 1.0], "mAP": 0.5}}}},
                 {"DI-REID": {"train_seconds": 180.0, "results": {"lr": {"cmc": [0.4, 0.9, 1.0], "mAP": 0.7}}}}]
    lines = splits_table(per_split, ranks=(1, 2)).splitlines()
    assert _cells(lines[0]) == ["model", "queries", "R1", "R2", "mAP", "train min"]
    assert _cells(lines[2]) == ["DI-REID", "lr", "30.0 ± 10.0", "70.0 ± 20.0", "60.0 ± 10.0", "2.0"]
