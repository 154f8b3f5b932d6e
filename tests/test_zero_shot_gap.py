"""A measured fact: real Re-ID weights lose rank-1 on MLR-VIPeR's down-sampled queries (zero-shot)."""
import os

import pytest

from direid_plugin import run
from direid_plugin.config import load_config


@pytest.mark.slow
def test_lr_queries_score_clearly_below_clean_queries(viper_root, osnet_msmt17_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    cfg = load_config(None, [
        "model.name", "osnet_x0_25", "model.load_weights", osnet_msmt17_weights,
        "data.root", os.path.dirname(viper_root), "data.sources", "['mlr_viper']",
        "data.targets", "['mlr_viper', 'mlr_viper_clean']", "data.workers", "0", "data.save_dir", str(tmp_path / "run"),
        "test.protocol", "single_shot", "test.normalize_feature", "True", "test.dist_metric", "cosine",
        "engine.progress", "False",
    ])
    results = run.test(cfg).eval_results
    lr, clean = results["mlr_viper"], results["mlr_viper_clean"]
    print(f"zero-shot osnet_x0_25 (MSMT17), split 0: LR R1 {lr['rank1']:.3f} mAP {lr['mAP']:.3f}; "
          f"clean R1 {clean['rank1']:.3f} mAP {clean['mAP']:.3f}")
    # Same identities, same gallery, same model: only the queries' resolution differs.
    assert lr["rank1"] < clean["rank1"] - 0.05
    assert lr["mAP"] < clean["mAP"] - 0.03
    assert lr["rank1"] > 1 / 316 * 5  # still far above chance: the model does see the person
