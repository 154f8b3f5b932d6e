"""Loading real torchreid Re-ID weights non-strictly, with a report of what matched."""
import torchreid

from direid_plugin import weights
from direid_plugin.build import load_reported
from direid_plugin.registry import model_factory


def test_osnet_msmt17_weights_load_without_the_classifier(osnet_msmt17_weights, capsys):
    model = torchreid.models.build_model("osnet_x0_25", 10, pretrained=False, use_gpu=False)
    report = load_reported(model, weights.read(osnet_msmt17_weights, "model.load_weights"))
    # Every backbone tensor comes from the file; the 10-way classifier (MSMT17 has 1041) does not.
    assert any(k.startswith("conv1.") for k in report.loaded)
    assert "classifier.weight" not in report.loaded and "classifier.weight" in report.mismatched
    assert all(k.startswith("classifier.") for k in report.missing)
    assert "tensors set" in capsys.readouterr().out


def test_one_rule_set_for_every_weights_option(osnet_msmt17_weights, tmp_path):
    """A torchreid checkpoint with a numpy rank1 and DataParallel prefixes loads through every option
    that names a weights file (it used to fail with UnpicklingError through ddgan.backbone_weights)."""
    import numpy as np
    import torch

    source = torch.load(osnet_msmt17_weights, map_location="cpu", weights_only=True)
    source = source.get("state_dict", source)
    path = tmp_path / "torchreid_style.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in source.items()}, "rank1": np.float32(0.5), "epoch": 3}, path)
    factory = model_factory()  # torchreid's, as the plugin's runs call it with the config's options
    ddgan = factory["ddgan"](4, pretrained=False, use_gpu=False, backbone_weights=str(path), feat_inv_dim=16,
                             content_dim=16)
    dfen = factory["dfen"](4, pretrained=False, use_gpu=False, backbone_weights=str(path), sen_weights=str(path),
                           feat_inv_dim=16, content_dim=16, attention="none")
    model = torchreid.models.build_model("osnet_x0_25", 4, pretrained=False, use_gpu=False)
    load_reported(model, weights.read(str(path), "model.pretrained_path"))
    expected = source["conv1.conv.weight"]
    for loaded in (ddgan.content_encoder.trunk.conv1.conv.weight, dfen.content_encoder.trunk.conv1.conv.weight,
                   dfen.sensitive_encoder.model.conv1.conv.weight, model.conv1.conv.weight):
        assert torch.equal(loaded, expected)


def test_a_file_that_is_not_a_checkpoint_names_the_option(tmp_path):
    import pytest

    path = tmp_path / "notes.txt"
    path.write_text("identity,camera\n")
    with pytest.raises(weights.CheckpointError, match=f"dfen.sen_weights {path}: not a torch checkpoint"):
        model_factory()["dfen"](4, pretrained=False, use_gpu=False, sen_weights=str(path), attention="none")
