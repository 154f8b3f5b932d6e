"""The end-to-end command on a tiny synthetic config: three stages, one table, a swap picture."""
import json
import os

import pytest
from PIL import Image

from direid_plugin.cli import pipeline as cli_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(REPO, "configs", "main", "synthetic_direid.yaml")


@pytest.mark.slow
def test_pipeline_runs_baseline_stage1_stage2_and_writes_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cli_pipeline.main([
        "--config-file", MAIN, "data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']",
        "data.save_dir", str(out), "train.max_epoch", "1", "train.batch_size", "8", "sampler.num_instances", "2",
        "ddgan.max_iter", "2", "ddgan.batch_size", "4", "ddgan.feat_inv_dim", "64", "engine.progress", "False",
        "pipeline.swap_pairs", "3",
    ])
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    labels = ["osnet_x0_25 baseline (triplet)", "DDGAN f_inv (stage 1 only)", "DI-REID (stage 1 + DFEN)"]
    assert list(results) == labels
    for label in labels:
        metrics = results[label]["results"]["synthetic_mlr_tiny"]
        assert metrics["protocol"] == "single_shot" and 0 <= metrics["rank1"] <= metrics["rank5"] <= 1
        assert results[label]["train_seconds"] > 0
        assert label in printed
    table = (out / "results.md").read_text().splitlines()
    assert table[0].startswith("| model") and len(table) == 2 + len(labels)
    # Stage 2 started from stage 1's last checkpoint; the picture has 3 rows of 6 images.
    stage2_cfg = (out / "stage2" / "config.yaml").read_text()
    assert str(out / "stage1" / "ddgan" / "model.pth.tar-2") in stage2_cfg
    picture = Image.open(out / "degradation_swap.jpg")
    assert picture.size[0] > 6 * 32 and picture.size[1] > 3 * 64
