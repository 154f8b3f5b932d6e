"""Tests generated from the model registry (the timm way): every registered plugin model builds by
name through torchreid, trains a tiny run through its engine, gives finite eval features of its
declared width, round-trips its checkpoint and exports to ONNX. A model added with one
``plugin_model`` entry is covered here without touching this file."""
import numpy as np
import onnxruntime
import pytest
import torch
import torchreid

from direid_plugin import run
from direid_plugin.build import build_run
from direid_plugin.config import load_config
from direid_plugin.engines.base import PluginEngine, SoftmaxEngine
from direid_plugin.models.trained import checkpoint_model_name, load_trained_model
from direid_plugin.registry import PLUGIN_MODELS, Signature, model_factory, plugin_model
from direid_plugin.weights import read

NAMES = sorted(PLUGIN_MODELS)
TINY_DATA = ["data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']", "data.height", "64",
             "data.width", "32", "data.workers", "0", "train.batch_size", "8", "test.batch_size", "16",
             "engine.progress", "False", "use_gpu", "False"]


def _config(name, save_dir):
    return load_config(None, TINY_DATA + ["model.name", name, "engine.name", name, "data.save_dir", str(save_dir)]
                       + list(PLUGIN_MODELS[name].tiny_opts))


@pytest.fixture(scope="module", params=NAMES)
def trained(request, tmp_path_factory):
    """(name, config, engine) after a tiny training run of each registered model."""
    folder = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIREID_CACHE", str(folder / "cache"))
        cfg = _config(request.param, folder / "run")
        torch.manual_seed(0)
        return request.param, cfg, run.train(cfg)


def test_builds_by_name_through_torchreid_with_finite_features_of_the_declared_width(trained):
    name, cfg, _ = trained
    # torchreid's build_model takes no architecture options: the default architecture by name...
    assert isinstance(torchreid.models.build_model(name, 4, pretrained=False, use_gpu=False), torch.nn.Module)
    # ...and any architecture through the same factory (what the plugin's runs call).
    model = model_factory()[name](4, pretrained=False, use_gpu=False, **PLUGIN_MODELS[name].config_kwargs(cfg))
    features = model.eval()(torch.rand(2, 3, cfg.data.height, cfg.data.width))
    assert features.shape == (2, model.feature_dim) and torch.isfinite(features).all()


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_option_is_refused_by_name(name):
    with pytest.raises(TypeError, match=rf"unknown {name} option\(s\) \['widht'\]; valid options: .*"):
        model_factory()[name](4, pretrained=False, use_gpu=False, widht=3)


def test_trains_through_its_engine_and_tests_with_the_plugin_step(trained):
    name, cfg, engine = trained
    assert isinstance(engine, PLUGIN_MODELS[name].engine_class()) and isinstance(engine, PluginEngine)
    result = engine.eval_results["synthetic_mlr_tiny"]
    assert 0 <= result["mAP"] <= 1 and result["evaluator"] == "plugin"
    assert engine.last_checkpoint and checkpoint_model_name(read(engine.last_checkpoint).state) == name


def test_checkpoint_round_trips(trained):
    name, cfg, engine = trained
    model, found = load_trained_model(cfg, engine.last_checkpoint, (name,))
    assert found == name
    images = torch.rand(3, 3, cfg.data.height, cfg.data.width)
    trained_model = engine.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), trained_model(images), atol=1e-5, rtol=1e-4)


def test_exports_to_onnx_graphs_that_run(trained, tmp_path):
    name, cfg, engine = trained
    model, _ = load_trained_model(cfg, engine.last_checkpoint, (name,))
    paths = PLUGIN_MODELS[name].exporter()(model, str(tmp_path), cfg)
    assert paths
    for path in paths.values():
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else 2 for d in i.shape],
                                                         dtype=np.float32) for i in session.get_inputs()}
        outputs = session.run(None, feeds)
        assert all(o.shape[0] == 2 and np.isfinite(o).all() for o in outputs), path


# -- a toy model: one registration is all it takes ---------------------------------------------------
class ToyEngine(SoftmaxEngine):
    @classmethod
    def from_config(cls, cfg, datamanager, model, settings, inputs):
        optimizer = torchreid.optim.build_optimizer(model, lr=1e-3)
        return cls(datamanager, model, optimizer=optimizer, use_gpu=False, settings=settings)


def test_a_model_added_with_one_registration_builds_and_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))

    @plugin_model("toy_osnet", config_kwargs=lambda cfg: {}, engine=f"{__name__}:ToyEngine",
                  signature=Signature("toy.", "toy.classifier.weight"), written_by="a test", export="")
    def toy_osnet(num_classes, loss="softmax", pretrained=True, use_gpu=True):
        return torchreid.models.build_model("osnet_x0_25", num_classes, pretrained=False, use_gpu=False)

    from direid_plugin import registry

    registry.register_model("toy_osnet", registry.PLUGIN_MODELS["toy_osnet"].factory)
    try:
        cfg = load_config(None, TINY_DATA + ["model.name", "toy_osnet", "data.save_dir", str(tmp_path / "run"),
                                             "train.max_epoch", "1"])
        engine = build_run(cfg)
        assert type(engine) is ToyEngine
        engine.run(save_dir=cfg.data.save_dir, max_epoch=1, ranks=[1])
        assert engine.eval_results["synthetic_mlr_tiny"]["evaluator"] == "plugin"
    finally:  # leave the real registries as they were
        registry.model_factory().pop("toy_osnet")
        PLUGIN_MODELS.pop("toy_osnet")
