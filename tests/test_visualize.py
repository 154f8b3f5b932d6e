"""tools/visualize.py on real VIPeR images: swap, replay, ranked and space pictures, and their layouts."""
import glob
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from conftest import TINY_VIPER_IDENTITIES
from direid_plugin.engines.checkpointing import save_checkpoint
from direid_plugin.cli import visualize as cli_visualize
from direid_plugin.config import load_config
from direid_plugin.data.degradations import Compose, Resolution
from direid_plugin.data.pairs import pair_transform
from direid_plugin.models.ddgan import DDGAN
from direid_plugin.models.dfen import DFEN
from direid_plugin.models.trained import load_trained_model
from direid_plugin.visualize.dataset_images import load_batch, picture_dataset, same_identity_pairs
from direid_plugin.visualize.grids import BLUE, GREEN, PAD, RED, caption_height, denormalize
from direid_plugin.visualize.ranked import top_matches
from direid_plugin.visualize.space import DPI, FIGSIZE, centre_per_image, degradation_codes, save_space_plot

IDENTITIES = TINY_VIPER_IDENTITIES  # MLR-VIPeR halves them: 4 train, 4 test identities
HEIGHT, WIDTH = 64, 32
FEAT_INV = 16
TILE_W, TILE_H = WIDTH + 2 * PAD, HEIGHT + 2 * PAD + caption_height(WIDTH)


def _opts(root, tmp_path, *extra):
    return ["data.root", str(root), "data.sources", "['mlr_viper']", "data.targets", "['mlr_viper']",
            "data.height", str(HEIGHT), "data.width", str(WIDTH), "data.save_dir", str(tmp_path / "run"),
            "ddgan.feat_inv_dim", str(FEAT_INV), "use_gpu", "False", *extra]


def _checkpoint(model, path):
    save_checkpoint({"state_dict": model.state_dict()}, str(path))
    return str(path)


@pytest.fixture
def ddgan_weights(tmp_path):
    torch.manual_seed(0)
    return _checkpoint(DDGAN(IDENTITIES // 2, feat_inv_dim=FEAT_INV), tmp_path / "ddgan" / "model.pth.tar-2")


def _run(command, weights, root, tmp_path, *args, opts=()):
    out = tmp_path / "pictures"
    path = cli_visualize.main([command, "--weights", weights, "--output-dir", str(out), *args,
                               *_opts(root, tmp_path, *opts)])
    assert os.path.dirname(path) == str(out)
    return path, Image.open(path)


def _tile(picture, row, col):
    """The image inside tile (row, col), without frame and caption."""
    left, top = col * TILE_W + PAD, row * TILE_H + PAD
    return np.asarray(picture.convert("RGB").crop((left, top, left + WIDTH, top + HEIGHT)), dtype=np.int16)


def _frame(picture, row, col):
    return picture.convert("RGB").getpixel((col * TILE_W + 1, row * TILE_H + 1))


def _pixels(image):
    return denormalize(image[None])[0].mul(255).round().byte().permute(1, 2, 0).numpy().astype(np.int16)


def test_swap_matrix_rows_are_contents_and_columns_degradations(ddgan_weights, mlr_root, tmp_path, capsys):
    path, picture = _run("swap", ddgan_weights, mlr_root, tmp_path, "--num-identities", "2")
    assert "swap_mlr_viper.png" in capsys.readouterr().out
    # 2 identities -> 2 HR gallery + 2 LR query images -> 5 x 5 tiles (a header row and column).
    assert picture.format == "PNG" and picture.size == (5 * TILE_W, 5 * TILE_H)

    cfg = load_config(None, _opts(mlr_root, tmp_path))
    model, _ = load_trained_model(cfg, ddgan_weights, ("ddgan",))
    _, dataset = picture_dataset(cfg)
    pairs = same_identity_pairs(dataset.query, dataset.gallery, 2)
    items = [hr for hr, _ in pairs] + [lr for _, lr in pairs]
    assert [item[2] for item in items] == [0, 0, 1, 1]  # MLR-VIPeR: cam_a HR gallery, cam_b LR queries
    x = load_batch([item[0] for item in items], pair_transform(HEIGHT, WIDTH), "cpu")
    with torch.no_grad():
        content, code = model.decompose(x)
        hr_content_lr_degradation = model.generate(content[:1], code[2:3])[0]
        lr_content_hr_degradation = model.generate(content[2:3], code[:1])[0]
    assert np.abs(_tile(picture, 0, 3) - _pixels(x[2])).max() <= 1  # header row: degradation sources
    assert np.abs(_tile(picture, 3, 0) - _pixels(x[2])).max() <= 1  # left column: content sources
    assert np.abs(_tile(picture, 1, 3) - _pixels(hr_content_lr_degradation)).max() <= 1
    assert np.abs(_tile(picture, 3, 1) - _pixels(lr_content_hr_degradation)).max() <= 1
    assert [_frame(picture, i, i) for i in range(1, 5)] == [BLUE] * 4  # reconstructions on the diagonal


def test_replay_renders_one_image_with_codes_of_bank_images(ddgan_weights, mlr_root, tmp_path):
    _, picture = _run("replay", ddgan_weights, mlr_root, tmp_path, "--num-codes", "3", "--bank-size", "5")
    assert picture.size == (4 * TILE_W, 2 * TILE_H)  # a header of code sources over the input and 3 renders
    renders = [_tile(picture, 1, col) for col in (1, 2, 3)]
    assert all(np.abs(a - b).max() > 0 for i, a in enumerate(renders) for b in renders[i + 1:])  # other code, other image


@pytest.mark.parametrize("model_kind", ["dfen", "ddgan"])
def test_ranked_lists_frame_the_true_match_green(model_kind, ddgan_weights, mlr_root, tmp_path):
    torch.manual_seed(0)
    weights = ddgan_weights if model_kind == "ddgan" else _checkpoint(
        DFEN(IDENTITIES // 2, feat_inv_dim=FEAT_INV, attention="guided"), tmp_path / "dfen.pth")
    _, picture = _run("ranked", weights, mlr_root, tmp_path, "--num-queries", "2", "--topk", "4")
    assert picture.size == (5 * TILE_W, 2 * TILE_H)
    for row in range(2):
        # Queries (LR camera) and gallery (HR camera) never share a camera, so all 4 gallery images
        # of the 4 test identities are ranked: exactly one is the query's identity.
        frames = [_frame(picture, row, col) for col in range(5)]
        assert frames[0] == BLUE and sorted(frames[1:]) == sorted([GREEN, RED, RED, RED])


def test_ranked_needs_a_degradation_discriminator(ddgan_weights, mlr_root, tmp_path):
    dfen = _checkpoint(DFEN(IDENTITIES // 2, feat_inv_dim=FEAT_INV, attention="none"), tmp_path / "dfen.pth")
    with pytest.raises(SystemExit) as exit_info:
        _run("ranked", dfen, mlr_root, tmp_path, opts=("dfen.attention", "none"))
    assert str(exit_info.value.code).startswith(f"error: --weights {dfen}: this DFEN has no degradation discriminator")
    assert "give --ddgan-weights" in str(exit_info.value.code)
    _, picture = _run("ranked", dfen, mlr_root, tmp_path, "--ddgan-weights", ddgan_weights, "--num-queries", "1",
                      "--topk", "2", opts=("dfen.attention", "none"))
    assert picture.size == (3 * TILE_W, TILE_H)


def test_space_plot_is_a_figure_of_the_configured_size(ddgan_weights, mlr_root, tmp_path, capsys):
    path, picture = _run("space", ddgan_weights, mlr_root, tmp_path, "--num-images", "4",
                         opts=("degradation.resolution_range", "[1.0, 4.0]"))
    assert os.path.basename(path) == "space_mlr_viper_resolution.png"
    assert picture.format == "PNG" and picture.size == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
    assert "Spearman of PC 1 vs factor" in capsys.readouterr().out


def test_space_per_image_writes_its_own_plot(ddgan_weights, mlr_root, tmp_path, capsys):
    path, _ = _run("space", ddgan_weights, mlr_root, tmp_path, "--num-images", "4", "--per-image", "3")
    assert os.path.basename(path) == "space_mlr_viper_resolution_per_image.png"
    assert "4 mlr_viper gallery images x 3 degraded copies, each image's mean code subtracted" in capsys.readouterr().out


def test_centre_per_image_takes_out_each_images_mean_code():
    codes = torch.tensor([[1.0, 5.0], [10.0, 0.0], [3.0, 7.0], [14.0, 0.0]])  # images 0, 1, then 0, 1 again
    assert torch.equal(centre_per_image(codes, 2), torch.tensor([[-1.0, -1.0], [-2.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))


class SharpnessCode(nn.Module):
    """A stand-in E_d whose 'code' is the image's horizontal and vertical gradient energy."""

    def forward(self, x, synthetic=False):
        return torch.stack([x.diff(dim=3).abs().mean((1, 2, 3)), x.diff(dim=2).abs().mean((1, 2, 3))], dim=1)


def test_space_colours_follow_the_drawn_amounts(viper_root, tmp_path):
    """Codes and amounts stay aligned: on one real image degraded 12 times, a code that measures
    sharpness orders the points by factor."""
    paths = sorted(glob.glob(os.path.join(viper_root, "VIPeR", "cam_a", "*.bmp")))[:1] * 12
    encoder = nn.Module()
    encoder.degradation_encoder = SharpnessCode()
    codes, factors = degradation_codes(encoder, paths, Compose([Resolution((1.0, 4.0))]), pair_transform(128, 64),
                                       "cpu", seed=3, batch_size=5)
    assert codes.shape == (12, 2) and factors.shape == (12,)
    assert 1.0 <= factors.min() and factors.max() <= 4.0 and len(set(factors)) == 12
    _, summary = save_space_plot(str(tmp_path / "space.png"), codes, factors, "factor", "sharpness")
    assert abs(summary["pc1_spearman"]) > 0.95


def test_top_matches_skip_the_query_identity_in_the_query_camera():
    query = [("q", 1, 0)]
    gallery = [("same id, same cam", 1, 0), ("other", 2, 1), ("same id, other cam", 1, 1), ("far", 3, 1)]
    distmat = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    assert top_matches(distmat, query, gallery, 2) == [[1, 2]]


def test_a_dfen_checkpoint_given_to_swap_is_a_one_line_error(mlr_root, tmp_path):
    dfen = _checkpoint(DFEN(IDENTITIES // 2, feat_inv_dim=FEAT_INV), tmp_path / "dfen.pth")
    with pytest.raises(SystemExit) as exit_info:
        _run("swap", dfen, mlr_root, tmp_path)
    assert exit_info.value.code == (
        f"error: --weights {dfen} is a DFEN checkpoint, but this command needs a DDGAN checkpoint "
        "(stage 1, engine.name ddgan, writes <save_dir>/ddgan/model.pth.tar-<iteration>)")
