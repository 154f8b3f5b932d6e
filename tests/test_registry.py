"""Registration into torchreid's own model factory and dataset registry."""
import importlib

import pytest
import torch
import torchreid

import direid_plugin
from direid_plugin import registry


def _tiny_osnet(num_classes, loss="softmax", pretrained=True, use_gpu=True, **kwargs):
    return torchreid.models.build_model("osnet_x0_25", num_classes, loss=loss, pretrained=False, use_gpu=use_gpu)


def test_registered_model_builds_through_torchreid(capsys):
    registry.register_model("test_tiny_osnet", _tiny_osnet)
    try:
        torchreid.models.show_avai_models()
        assert "test_tiny_osnet" in capsys.readouterr().out
        model = torchreid.models.build_model("test_tiny_osnet", 7, loss="softmax", pretrained=False, use_gpu=False)
        model.train()
        assert model(torch.rand(2, 3, 64, 32)).shape == (2, 7)
        model.eval()
        assert model(torch.rand(2, 3, 64, 32)).shape == (2, 512)
    finally:
        registry.model_factory().pop("test_tiny_osnet")


def test_import_reload_and_reregister_are_idempotent():
    before_models = dict(registry.model_factory())
    before_datasets = dict(registry.dataset_registry())
    importlib.reload(direid_plugin)
    direid_plugin.register_all()
    direid_plugin.register_all()
    assert set(registry.model_factory()) == set(before_models)
    assert set(registry.dataset_registry()) == set(before_datasets)


def test_plugin_cannot_shadow_a_stock_name():
    with pytest.raises(KeyError, match="already taken"):
        registry.register_model("resnet50", _tiny_osnet)
    with pytest.raises(KeyError, match="already taken"):
        registry.register_dataset("market1501", object)


def test_plugin_datasets_are_in_torchreids_registry():
    for name in ("pku_reid",):
        assert name in registry.dataset_registry()


def test_pku_reid_through_image_data_manager(pku_root):
    import os

    dm = torchreid.data.ImageDataManager(
        root=os.path.dirname(pku_root), sources="pku_reid", height=64, width=32,
        use_gpu=False, workers=0, batch_size_train=8,
    )
    assert dm.num_train_pids == 62
    query, gallery = dm.fetch_test_loaders("pku_reid")
    assert len(query) == 28 and len(gallery) == 181
