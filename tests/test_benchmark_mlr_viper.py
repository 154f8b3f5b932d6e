"""tools/benchmark_mlr_viper.py --reuse: splits finished in earlier sessions are summarised from their results.json."""
import importlib.util
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = ("mlr_viper", "mlr_viper_clean")


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_mlr_viper", os.path.join(REPO, "tools", "benchmark_mlr_viper.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(seconds, rank1, mAP):
    """A pipeline's results.json: per model, its train seconds and each query set's CMC (10 ranks) and mAP."""
    return {"train_seconds": seconds,
            "results": {d: {"cmc": [rank1[i]] + [0.9] * 9, "mAP": mAP[i]} for i, d in enumerate(DATASETS)}}


def _write_split(root, split, baseline, direid):
    folder = root / f"split{split}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "osnet_x0_25 baseline (triplet)": _results(*baseline),
        "DDGAN f_inv (stage 1 only)": _results(50.0, (0.05, 0.05), (0.1, 0.1)),
        "DI-REID (stage 1 + DFEN)": _results(*direid),
    }))


def test_reuse_summarises_finished_splits_with_paired_differences_and_time_ratio(tmp_path, capsys):
    _write_split(tmp_path, 0, (100.0, (0.40, 0.50), (0.50, 0.60)), (700.0, (0.46, 0.49), (0.56, 0.60)))
    _write_split(tmp_path, 1, (200.0, (0.44, 0.52), (0.54, 0.62)), (1000.0, (0.48, 0.52), (0.58, 0.61)))
    _tool().main(["--splits", "0,1", "--reuse", "data.save_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "split 0: reusing" in out and "split 1: reusing" in out
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    # DI-REID LR R1 46 and 48: mean 47.0, population std 1.0; the baseline's LR R1 42.0 ± 2.0.
    assert "47.0 ± 1.0" in next(l for l in out.splitlines() if l.startswith("| DI-REID") and "mlr_viper " in l)
    assert "42.0 ± 2.0" in next(l for l in out.splitlines() if l.startswith("| osnet") and "mlr_viper " in l)
    # Paired differences (points) and time ratios, split by split, then their mean.
    assert [c.strip() for c in lines["0"].split("|")[2:-1]] == ["+6.0", "+6.0", "-1.0", "+0.0", "7.00"]
    assert [c.strip() for c in lines["1"].split("|")[2:-1]] == ["+4.0", "+4.0", "+0.0", "-1.0", "5.00"]
    assert [c.strip() for c in lines["mean"].split("|")[2:-1]] == ["+5.0", "+5.0", "-0.5", "-0.5", "6.00"]
    assert "DI-REID train time / baseline train time: 6.00x" in out
    assert json.loads((tmp_path / "benchmark.json").read_text())["time_ratio"] == 6.0
