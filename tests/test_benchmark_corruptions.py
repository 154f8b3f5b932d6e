"""tools/benchmark_corruptions.py end to end on real VIPeR images and real OSNet weights (a subset of
corruptions and severities): tables, mCE against the reference, heatmap, results.json, clean
features computed once per model."""
import importlib.util
import json
import os

import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_corruptions", os.path.join(REPO, "tools",
                                                                                        "benchmark_corruptions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_models_on_corrupted_viper(mlr_root, tmp_path, osnet_msmt17_weights, osnet_market_weights, capsys,
                                       monkeypatch):
    config = tmp_path / "osnet.yaml"
    config.write_text("model:\n  name: osnet_x0_25\ndata:\n  height: 64\n  width: 32\n"
                      "test:\n  normalize_feature: true\n  dist_metric: cosine\n")
    tool = _tool()
    calls = []
    extract = tool.FeatureExtractor.__call__
    monkeypatch.setattr(tool.FeatureExtractor, "__call__", lambda self, items: calls.append(len(items)) or extract(self, items))
    output = tmp_path / "out"
    tool.main(["--dataset", "viper", "--root", str(mlr_root), "--model", "msmt17", str(config), osnet_msmt17_weights,
               "--model", "market", str(config), osnet_market_weights, "--reference", "msmt17",
               "--corruptions", "fog,rain", "--severities", "1,5", "--output", str(output)])
    out = capsys.readouterr().out
    assert "5 corrupted test sets of viper" in out and "Mean corruption error against msmt17" in out
    assert "Per corruption, mode 'gallery'" in out
    # Per model: clean query and gallery once, then each of the 5 sets' query and gallery once.
    assert calls == [4] * 12 * 2
    results = json.loads((output / "results.json").read_text())
    assert set(results["results"]["market"]["modes"]["both"]) == {"fog_1", "fog_5", "rain_1", "rain_5", "random"}
    for mode in ("both", "query", "gallery"):
        reference = results["summary"]["msmt17"][mode]
        assert reference["mCE_rank1"] == pytest.approx(100.0) and reference["mCE_mAP"] == pytest.approx(100.0)
    for label in ("msmt17", "market"):  # a query-only or gallery-only set keeps the other side clean
        modes = results["results"][label]["modes"]
        assert all(0.0 <= modes[m]["fog_5"]["mAP"] <= 1.0 for m in modes)
    assert results["results"]["msmt17"]["clean"] != results["results"]["market"]["clean"]
    with Image.open(output / "map_drop_heatmap.png") as heatmap:
        assert heatmap.width > 300 and heatmap.height > 150
    assert "| corruption" in (output / "results.md").read_text()

    # Adding a model to that run evaluates the new one only; the others come from its results.json.
    calls.clear()
    tool.main(["--dataset", "viper", "--root", str(mlr_root), "--model", "msmt17", str(config), osnet_msmt17_weights,
               "--model", "market", str(config), osnet_market_weights, "--model", "market again", str(config),
               osnet_market_weights, "--reference", "msmt17", "--corruptions", "fog,rain", "--severities", "1,5",
               "--output", str(tmp_path / "more"), "--reuse", str(output / "results.json")])
    assert calls == [4] * 12 and "msmt17: reused from" in capsys.readouterr().out
    more = json.loads((tmp_path / "more" / "results.json").read_text())
    assert more["results"]["msmt17"] == results["results"]["msmt17"]
    assert more["results"]["market again"] == results["results"]["market"]  # same weights, evaluated afresh
    with pytest.raises(SystemExit, match="its test sets differ"):
        tool.main(["--dataset", "viper", "--root", str(mlr_root), "--model", "msmt17", str(config),
                   osnet_msmt17_weights, "--corruptions", "fog", "--output", str(tmp_path / "x"),
                   "--reuse", str(output / "results.json")])


def test_bad_arguments_are_one_line_errors(capsys):
    tool = _tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["--dataset", "viper", "--root", ".", "--model", "a", "c.yaml", "w.pth", "--output", "o",
                         "--corruptions", "fog,haze"])
    assert "unknown corruption 'haze'; valid names are gaussian_noise" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--dataset", "viper", "--root", ".", "--model", "a", "c.yaml", "w.pth", "--output", "o",
                         "--reference", "b"])
    assert "--reference 'b' is not a --model label (a)" in capsys.readouterr().err
