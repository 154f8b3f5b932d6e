"""``test.evaluator`` through the engine: the plugin's ranking / re-ranking, or torchreid's own."""
import os

import numpy as np
import pytest
import torch
import torchreid

from direid_plugin.config import ConfigError, load_config
from direid_plugin.build import build_engine
from direid_plugin.evaluation.tables import run_headers, run_rows
from direid_plugin.evaluation.test_step import extract_features


@pytest.fixture(scope="module")
def model(pku_datamanager):
    torch.manual_seed(0)
    return torchreid.models.build_model("osnet_x0_25", pku_datamanager.num_train_pids, pretrained=False, use_gpu=False)


def evaluate(datamanager, model, evaluator, **kwargs):
    engine = build_engine(load_config(opts=["test.evaluator", evaluator]), datamanager, model)
    loaders = datamanager.test_loader["pku_reid"]
    engine._evaluate(dataset_name="pku_reid", query_loader=loaders["query"], gallery_loader=loaders["gallery"],
                     ranks=[1, 5, 10], **kwargs)
    return engine


@pytest.mark.parametrize("rerank", [False, True])
def test_plugin_and_torchreid_evaluators_agree(pku_datamanager, model, rerank, capsys):
    plugin = evaluate(pku_datamanager, model, "plugin", rerank=rerank)
    plugin_out = capsys.readouterr().out
    torchreid_engine = evaluate(pku_datamanager, model, "torchreid", rerank=rerank)
    torchreid_out = capsys.readouterr().out
    ours, theirs = plugin.eval_results["pku_reid"], torchreid_engine.eval_results["pku_reid"]
    assert (ours["evaluator"], theirs["evaluator"]) == ("plugin", "torchreid")
    np.testing.assert_allclose(ours["cmc"], theirs["cmc"], atol=1e-6)
    assert ours["mAP"] == pytest.approx(theirs["mAP"], abs=1e-6)
    assert 0 < ours["mINP"] <= ours["mAP"] and theirs["mINP"] is None  # torchreid computes no mINP
    assert "mINP" in plugin_out and "mINP" not in torchreid_out
    if rerank:
        assert "re-ranking (plugin)" in plugin_out and "re-ranking (torchreid)" in torchreid_out
    # The results table carries mINP (NaN where the evaluator gives none).
    assert run_headers([1, 5])[-2:] == ["mAP", "mINP"]
    assert run_rows(plugin.eval_results, "m", [1, 5])[0][-1] == pytest.approx(100 * ours["mINP"])
    assert np.isnan(run_rows(torchreid_engine.eval_results, "m", [1, 5])[0][-1])


def test_ranked_list_pictures_from_the_plugin_evaluator(pku_datamanager, model, tmp_path):
    evaluate(pku_datamanager, model, "plugin", visrank=True, visrank_topk=3, save_dir=str(tmp_path))
    query, _ = pku_datamanager.fetch_test_loaders("pku_reid")
    # one picture per query file name (torchreid overwrites pictures of queries sharing a name)
    expected = {os.path.splitext(os.path.basename(item[0]))[0] for item in query}
    assert {path.stem for path in (tmp_path / "visrank_pku_reid").iterdir()} == expected


@pytest.mark.parametrize("opts, message", [
    (["test.evaluator", "cython"], "test.evaluator: unknown evaluator 'cython'"),
    (["test.protocol", "multi_shot"], "test.protocol: unknown protocol 'multi_shot'"),
    (["test.evaluator", "torchreid", "test.protocol", "single_shot"], "test.protocol: the single-shot protocol is the plugin's"),
])
def test_bad_evaluation_settings_are_config_errors(pku_datamanager, model, opts, message):
    with pytest.raises(ConfigError, match=message):
        build_engine(load_config(opts=opts), pku_datamanager, model)


@pytest.mark.parametrize("flip", [False, True])
def test_test_flip_averages_every_engines_features_with_the_mirror(pku_datamanager, model, flip):
    """test.flip applies to a stock torchreid engine as to DFEN, so baselines are tested alike."""
    engine = build_engine(load_config(opts=["test.flip", str(flip)]), pku_datamanager, model)
    query = pku_datamanager.test_loader["pku_reid"]["query"]
    model.eval()  # as torchreid's test() sets it
    with torch.no_grad():
        features, _, _ = extract_features(engine.extract_features, engine.parse_data_for_eval, query,
                                          torch.device("cpu"), flip=engine.settings.flip)
    images = torch.cat([engine.parse_data_for_eval(data)[0] for data in query])
    with torch.no_grad():
        plain, mirrored = model(images), model(images.flip(3))
    expected = (plain + mirrored) / 2 if flip else plain
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain, mirrored, atol=1e-3)  # the mirror really changes the feature


class _NaNAfterFirstBatch(torch.nn.Module):
    """The model's features, with NaN in every row but the first of each batch (a broken model)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        features = self.model(x)
        return torch.cat([features[:1], torch.full_like(features[1:], float("nan"))]) if not self.training else features


def test_non_finite_features_name_the_dataset_and_images(pku_datamanager, model):
    with pytest.raises(ValueError, match=r"pku_reid query: \d+ of \d+ features are not finite \(NaN/inf\), e\.g\. of "
                                         r"\['[^']+\.(png|jpg|bmp)'.*the model's output is broken"):
        evaluate(pku_datamanager, _NaNAfterFirstBatch(model).eval(), "plugin")
