"""tools/export_onnx.py: DFEN and DDGAN graphs match torch within 1e-4 on real images, at two batch sizes."""
import glob
import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

from direid_plugin.engines.checkpointing import save_checkpoint
from direid_plugin.cli import export_onnx as cli_export
from direid_plugin.data.pairs import pair_transform
from direid_plugin.models.ddgan import DDGAN
from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.models.dfen import DFEN
from direid_plugin.visualize.dataset_images import load_batch

HEIGHT, WIDTH = 64, 32
FEAT_INV = 16
NUM_IDS = 5
TOLERANCE = 1e-4


@pytest.fixture
def images(viper_root):
    """Three real VIPeR images (both cameras) as model input."""
    paths = sorted(glob.glob(os.path.join(viper_root, "VIPeR", "cam_a", "*.bmp")))[:2]
    paths += sorted(glob.glob(os.path.join(viper_root, "VIPeR", "cam_b", "*.bmp")))[:1]
    return load_batch(paths, pair_transform(HEIGHT, WIDTH), "cpu")


def _export(model, tmp_path, *opts):
    weights = tmp_path / "model.pth.tar-1"
    save_checkpoint({"state_dict": model.state_dict()}, str(weights))
    return cli_export.main(["--weights", str(weights), "--output-dir", str(tmp_path / "onnx"), "data.height",
                            str(HEIGHT), "data.width", str(WIDTH), "ddgan.feat_inv_dim", str(FEAT_INV), *opts])


def _session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_dfen_graph_gives_the_test_feature(images, tmp_path, capsys):
    torch.manual_seed(0)
    dfen = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, attention="guided").eval()
    with torch.no_grad():  # trained-like D_d statistics, so the guided attention is not constant
        for p in dfen.degradation_discriminator.parameters():
            p.normal_(0.0, 0.3)
    paths = _export(dfen, tmp_path, "test.flip", "True")
    assert "image ['batch', 3, 64, 32] -> feature ['batch', 528]" in capsys.readouterr().out
    session = _session(paths["dfen"])
    assert [i.name for i in session.get_inputs()] == ["image"] and session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        with torch.no_grad():
            expected = flip_averaged(dfen, images[:batch], flip=True)
        (feature,) = session.run(None, {"image": images[:batch].numpy()})
        assert feature.shape == (batch, FEAT_INV + 512)
        assert np.abs(feature - expected.numpy()).max() <= TOLERANCE


def test_ddgan_graphs_compose_into_degradation_swaps(images, tmp_path):
    torch.manual_seed(0)
    ddgan = DDGAN(NUM_IDS, feat_inv_dim=FEAT_INV).eval()
    paths = _export(ddgan, tmp_path)
    assert sorted(paths) == ["ddgan_content_encoder", "ddgan_decoder", "ddgan_degradation_encoder"]
    content_encoder, degradation_encoder, decoder = (
        _session(paths[f"ddgan_{name}"]) for name in ("content_encoder", "degradation_encoder", "decoder"))
    for batch in (1, 3):
        x = images[:batch]
        with torch.no_grad():
            content, code = ddgan.decompose(x)
            swapped = ddgan.generate(content, code.flip(0))  # each content with another image's degradation
        (onnx_content,) = content_encoder.run(None, {"image": x.numpy()})
        (onnx_code,) = degradation_encoder.run(None, {"image": x.numpy()})
        (onnx_swapped,) = decoder.run(None, {"content": onnx_content, "code": np.ascontiguousarray(onnx_code[::-1])})
        assert np.abs(onnx_content - content.numpy()).max() <= TOLERANCE
        assert np.abs(onnx_code - code.numpy()).max() <= TOLERANCE
        assert onnx_swapped.shape == (batch, 3, HEIGHT, WIDTH)
        assert np.abs(onnx_swapped - swapped.numpy()).max() <= TOLERANCE


def test_a_torchreid_checkpoint_is_a_one_line_error(osnet_msmt17_weights, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli_export.main(["--weights", osnet_msmt17_weights, "--output-dir", str(tmp_path)])
    assert exit_info.value.code.startswith(
        f"error: --weights {osnet_msmt17_weights} is not a checkpoint of a plugin model (ddgan, dfen), but this command needs "
        "a DFEN checkpoint (stage 2")
