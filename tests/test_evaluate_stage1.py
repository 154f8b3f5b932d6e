"""tools/evaluate_stage1.py on real VIPeR test images: reconstruction errors, the D_d order of real
HR/LR images, the degradation-space correlation, and the command's checkpoints and table."""
import glob

import pytest
import torch
import torch.nn as nn

from conftest import TINY_VIPER_IDENTITIES
from direid_plugin.engines.checkpointing import save_checkpoint
from direid_plugin.cli import evaluate_stage1 as cli
from direid_plugin.config import load_config
from direid_plugin.data.degradations import Compose, Resolution
from direid_plugin.data.pairs import pair_transform
from direid_plugin.evaluation import stage1
from direid_plugin.models.ddgan import DDGAN
from direid_plugin.visualize.dataset_images import picture_dataset

HEIGHT, WIDTH = 64, 32


def _opts(root, tmp_path):
    return ["data.root", str(root), "data.sources", "['mlr_viper']", "data.targets", "['mlr_viper']",
            "data.height", str(HEIGHT), "data.width", str(WIDTH), "data.save_dir", str(tmp_path / "run"),
            "ddgan.feat_inv_dim", "16", "use_gpu", "False"]


class Sharpness(nn.Module):
    """Scores (and 'encodes') an image by its gradient energy: sharper = higher, as D_d should."""

    def forward(self, x, synthetic=False):
        return torch.stack([x.diff(dim=3).abs().mean((1, 2, 3)), x.diff(dim=2).abs().mean((1, 2, 3))], dim=1)

    def score(self, x):
        return self(x).sum(1)


def test_reconstruction_errors_use_the_self_head_for_the_degraded_image():
    torch.manual_seed(0)
    model = DDGAN(3, feat_inv_dim=16, content_dim=16, adain_mlp_dim=16, deg_encoder_dim=8, dis_dim=8).eval()
    x_a, x_b = torch.randn(5, 3, HEIGHT, WIDTH), torch.randn(5, 3, HEIGHT, WIDTH)
    errors = stage1.reconstruction_errors(model, x_a, x_b, batch_size=2)
    with torch.no_grad():
        c_a, d_a = model.decompose(x_a)
        c_b, d_b = model.decompose(x_b, synthetic=True)
        l1 = lambda x, y: (x - y).abs().mean().item()
        rec = (l1(model.generate(c_a, d_a), x_a) + l1(model.generate(c_b, d_b), x_b)) / 2
        cross = (l1(model.generate(c_a, d_b), x_b) + l1(model.generate(c_b, d_a), x_a)) / 2
    assert errors["rec"] == pytest.approx(rec, rel=1e-5) and errors["cross_rec"] == pytest.approx(cross, rel=1e-5)


def test_a_sharpness_judge_orders_real_hr_above_real_lr(mlr_root, tmp_path):
    """MLR-VIPeR's LR queries are down-sampled copies: a D_d that scores sharpness ranks every
    identity's HR gallery image above its LR query, and a code that measures sharpness follows
    the down-sampling factor."""
    cfg = load_config(None, _opts(mlr_root, tmp_path))
    _, dataset = picture_dataset(cfg)
    judge = nn.Module()
    judge.degradation_discriminator = judge.degradation_encoder = Sharpness()
    judge.dummy = nn.Parameter(torch.zeros(1))  # gives the stand-in a device
    transform = pair_transform(128, 48)  # VIPeR's own size, where a factor-2 down-sampling still shows
    order, n_ids = stage1.degradation_order(judge, dataset.gallery, dataset.query, transform)
    assert (order, n_ids) == (1.0, TINY_VIPER_IDENTITIES // 2)
    assert stage1.degradation_order(judge, dataset.query, dataset.gallery, transform)[0] == 0.0
    paths = [item[0] for item in dataset.gallery]
    resolution = Compose([Resolution((1.0, 4.0))])
    assert abs(stage1.degradation_space_spearman(judge, paths * 3, resolution, transform, seed=1)) > 0.8
    assert abs(stage1.degradation_space_spearman(judge, paths, resolution, transform, seed=1, per_image=3)) > 0.8


def test_the_command_prints_one_row_per_checkpoint_in_iteration_order(mlr_root, tmp_path, capsys):
    torch.manual_seed(0)
    folder = tmp_path / "run" / "ddgan"
    for iteration in (200, 100):
        save_checkpoint({"state_dict": DDGAN(TINY_VIPER_IDENTITIES // 2, feat_inv_dim=16).state_dict()},
                        str(folder / f"model.pth.tar-{iteration}"))
    output = tmp_path / "curve.json"
    rows = cli.main(["--checkpoint-dir", str(folder), "--num-images", "4", "--output", str(output),
                     "--config-file", "", *_opts(mlr_root, tmp_path)])
    assert [row[0] for row in rows] == [100, 200]
    assert all(value == value for row in rows for value in row)  # no NaN
    assert all(0.0 <= row[3] <= 100.0 and all(-1.0 <= rho <= 1.0 for rho in row[4:]) and len(row) == 8 for row in rows)
    printed = capsys.readouterr().out
    assert "mlr_viper test split (4 identities)" in printed and "iteration 200 / iteration 100: rec L1 x" in printed
    assert output.is_file()
    assert sorted(glob.glob(str(folder / "*"))) == [str(folder / "model.pth.tar-100"), str(folder / "model.pth.tar-200")]


def test_the_command_needs_checkpoints(mlr_root, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--config-file", "", *_opts(mlr_root, tmp_path)])
    assert "--weights FILE" in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--checkpoint-dir", str(tmp_path), "--config-file", "", *_opts(mlr_root, tmp_path)])
    assert str(exit_info.value.code) == f"error: --checkpoint-dir {tmp_path}: no model.pth.tar-<iteration> file in it"
