"""Stage-1 cost: the ddgan.* width knobs change the modules as documented (defaults stay the official
architecture), batched calls equal separate ones, the lazy gradient penalty, the section timer, and
the CPU preset training through the engine."""
import os

import pytest
import torch
import torch.nn as nn
import torchreid

from direid_plugin import losses as L
from direid_plugin import build
from direid_plugin.config import get_default_config, load_config
from direid_plugin.engines.ddgan_engine import DDGANEngine
from direid_plugin.models.content_encoder import ContentEncoder
from direid_plugin.models.ddgan import ddgan, from_config
from direid_plugin.models.decoder import AdaINDecoder
from direid_plugin.models.degradation_encoder import DegradationEncoder
from direid_plugin.models.discriminator import MultiScaleDiscriminator
from direid_plugin.profiling import SectionTimer, section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_PRESET = os.path.join(REPO, "configs", "ddgan", "ddgan_cpu.yaml")


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# ---- knobs -------------------------------------------------------------------------------------

def test_default_config_builds_the_official_architecture():
    """The knobs' defaults are the official widths: docs/method.md 3.9's parameter counts."""
    model = ddgan(1367, pretrained=False, **{**from_config(get_default_config()), "feat_inv_dim": 2048})
    assert n_params(model.decoder) == 5_135_811
    assert n_params(model.degradation_encoder) == 1_653_696
    assert n_params(model.real_discriminator) == 1_025_091  # 3 scales
    assert n_params(model.degradation_discriminator) == 341_697  # 1 scale
    assert [c.out_channels for c in convs(model.content_encoder.head.content_branch)] == [64, 64, 64, 64]
    assert get_default_config().ddgan.grad_penalty_every == 1


def test_decoder_knobs():
    decoder = AdaINDecoder(content_dim=16, code_dim=8, mlp_dim=32, upsample_kernel=3)
    assert [block.conv1[1].out_channels for block in decoder.res_blocks] == [16] * 4
    ups = [convs(stage)[0] for stage in decoder.upsample]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in ups] == [(16, 8, (3, 3)), (8, 4, (3, 3))]
    assert [c.out_channels for c in convs(decoder.output)] == [4, 4, 3]
    hidden = [m for m in decoder.scale_mlps[0].modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in hidden] == [(8, 32), (32, 32), (32, 32)]
    assert decoder(torch.randn(2, 16, 8, 3), torch.randn(2, 8)).shape == (2, 3, 32, 12)
    with pytest.raises(ValueError, match="odd"):
        AdaINDecoder(upsample_kernel=4)
    with pytest.raises(ValueError, match="divisible by 4"):
        AdaINDecoder(content_dim=18)


def test_content_branch_is_half_the_content_width():
    encoder = ContentEncoder(5, backbone="osnet_x0_25", content_dim=16)
    assert [c.out_channels for c in convs(encoder.head.content_branch)] == [8, 8, 8, 8]
    assert encoder.head.content_fuse[1].in_channels == 32 and encoder.head.content_fuse[1].out_channels == 16
    assert encoder.content(torch.randn(2, 3, 128, 48)).shape == (2, 16, 32, 12)


def test_degradation_encoder_and_discriminator_widths():
    encoder = DegradationEncoder(code_dim=32, width=16)
    assert [c.out_channels for c in convs(encoder.trunk)] == [16, 16, 32, 64, 64, 64]
    assert encoder(torch.randn(2, 3, 128, 48)).shape == (2, 32)
    dis = MultiScaleDiscriminator(2, width=8)
    assert dis.n_scales == 2
    assert [c.out_channels for c in convs(dis.scales[0])][:5] == [8, 8, 8, 8, 16]
    assert [tuple(o.shape[1:]) for o in dis(torch.randn(2, 3, 128, 48))] == [(1, 32, 12), (1, 16, 6)]


def test_config_knobs_reach_the_model():
    cfg = load_config(CPU_PRESET, ["ddgan.backbone_weights", ""])
    model = ddgan(3, pretrained=False, **from_config(cfg))
    o = cfg.ddgan
    assert model.decoder.res_blocks[0].dim == o.content_dim
    assert convs(model.decoder.upsample)[0].kernel_size == (o.upsample_kernel, o.upsample_kernel)
    assert convs(model.degradation_encoder.trunk)[0].out_channels == o.deg_encoder_dim
    assert convs(model.real_discriminator.scales[0])[0].out_channels == o.dis_dim
    assert (model.real_discriminator.n_scales, model.degradation_discriminator.n_scales) == (o.dr_scales, o.dd_scales)
    assert n_params(model.decoder) < n_params(AdaINDecoder()) / 30  # 136k against 5.1M parameters


# ---- batched calls are exact -------------------------------------------------------------------

def test_trunk_batches_images_only_where_exact():
    torch.manual_seed(0)
    x_a, x_b = torch.randn(3, 3, 64, 32), torch.randn(2, 3, 64, 32)
    still = ContentEncoder(5, backbone="osnet_x0_25", trunk_bn_eval=True).train()
    batched = still.levels_of(x_a, x_b)
    for got, x in zip(batched, (x_a, x_b)):
        for level, alone in zip(got, still.levels(x)):
            assert torch.allclose(level, alone, atol=1e-5)
    drifting = ContentEncoder(5, backbone="osnet_x0_25").train()  # train-mode BatchNorm: one call per batch
    before = drifting.trunk.conv1.bn.num_batches_tracked.item()
    drifting.levels_of(x_a, x_b)
    assert drifting.trunk.conv1.bn.num_batches_tracked.item() == before + 2


def test_degradation_codes_of_several_batches():
    torch.manual_seed(0)
    encoder = DegradationEncoder(width=16)
    x_a, x_b = torch.randn(3, 3, 64, 32), torch.randn(2, 3, 64, 32)
    d_a, d_b = encoder.codes_of((x_a, False), (x_b, True))
    assert torch.allclose(d_a, encoder(x_a), atol=1e-6) and torch.allclose(d_b, encoder(x_b, synthetic=True), atol=1e-6)


# ---- lazy gradient penalty ---------------------------------------------------------------------

def test_lazy_penalty_weight_is_scaled_by_its_interval():
    torch.manual_seed(0)
    dis = MultiScaleDiscriminator(1, width=8).double()
    fake, real = torch.randn(2, 3, 64, 32).double(), torch.randn(2, 3, 64, 32).double()
    plain = L.discriminator_loss(dis, fake, real, "lsgan", gp_weight=0.0)
    lazy = L.discriminator_loss(dis, fake, real, "lsgan", gp_weight=4 * 0.01)
    anchor = real.clone().requires_grad_(True)
    penalty = L.gradient_penalty(dis(anchor), anchor)
    assert (lazy - plain).item() == pytest.approx(4 * 0.01 * penalty.item(), rel=1e-9)


def _engine(tmp_path, *opts, config=CPU_PRESET):
    cfg = load_config(config, [
        "data.root", str(tmp_path / "data"), "data.sources", "['synthetic_mlr_tiny']",
        "data.targets", "['synthetic_mlr_tiny']", "data.save_dir", str(tmp_path / "run"), "ddgan.batch_size", "4",
        "ddgan.backbone_weights", "", "ddgan.feat_inv_dim", "64", "ddgan.log_freq", "1", "ddgan.image_freq", "0",
        "ddgan.checkpoint_freq", "0", "use_gpu", "False", *opts])
    torchreid.utils.set_random_seed(cfg.train.seed)
    dm = build.build_datamanager(cfg)
    return DDGANEngine(dm, build.build_model(cfg, dm.num_train_pids), cfg, use_gpu=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))


def test_lazy_penalty_runs_on_every_kth_step_of_each_iteration_kind(cache, tmp_path):
    engine = _engine(tmp_path, "ddgan.grad_penalty_every", "2")
    stream, penalised = iter(engine.pairs), []
    for _ in range(6):  # self, real, self, real, ...: the 2nd and 3rd pair of iterations are penalised
        with SectionTimer() as timer:
            engine.forward_backward(next(stream))
        penalised.append("gradient penalty" in timer.seconds)
    assert penalised == [False, False, True, True, False, False]
    assert engine.trainer.state_dict()["d_steps"] == {"self": 3, "real": 3}


# ---- profiling ---------------------------------------------------------------------------------

class FakeClock(SectionTimer):
    """A SectionTimer whose clock advances only when told to."""

    def __init__(self):
        super().__init__()
        self.t = 0.0

    def _now(self):
        return self.t


def test_sections_are_timed_exclusively():
    with FakeClock() as timer:
        with section("outer"):
            timer.t += 1.0
            with section("inner"):
                timer.t += 2.0
            timer.t += 0.5
        with section("inner"):
            timer.t += 0.25
    assert dict(timer.seconds) == {"outer": 1.5, "inner": 2.25}
    assert sum(timer.seconds.values()) == timer.t
    with section("not recorded"):  # no timer active: nothing happens
        pass
    assert "not recorded" not in timer.seconds


# ---- the CPU preset ----------------------------------------------------------------------------

def test_cpu_preset_inherits_the_official_losses_and_trains(cache, tmp_path):
    cfg = load_config(CPU_PRESET)
    official = load_config(os.path.join(REPO, "configs", "ddgan", "ddgan_official.yaml"))
    assert (cfg.data.height, cfg.data.width) == (128, 48)
    for key in ("gan_type", "real_deg", "w_real", "w_deg", "w_rec", "w_cross_rec", "w_inv", "w_id", "grad_penalty",
                "betas", "batch_size"):
        assert cfg.ddgan[key] == official.ddgan[key], key
    assert cfg.ddgan.w_cycle == 0.0 and cfg.ddgan.lr == 5 * official.ddgan.lr  # listed departures
    engine = _engine(tmp_path, "ddgan.max_iter", "4")
    before = {k: v.clone() for k, v in engine.model.decoder.state_dict().items()}
    engine.run(save_dir=str(tmp_path / "run"))
    assert engine.iteration == 4
    assert any(not torch.equal(before[k], v) for k, v in engine.model.decoder.state_dict().items())
    assert os.path.isfile(engine.last_checkpoint)


@pytest.mark.slow
def test_benchmark_profile_shares_add_up(capsys):
    """tools/benchmark_ddgan.py --profile: one table per config whose shares cover each iteration."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_ddgan", os.path.join(REPO, "tools", "benchmark_ddgan.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["--configs", CPU_PRESET, "--profile", "--height", "64", "--width", "32", "--batch", "2", "--iters", "1",
               "--warmup", "0", "ddgan.backbone_weights", ""])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in lines if line.startswith("| ")}
    for kind_column in (1, 3):  # self %, real %
        shares = [float(row[kind_column]) for name, row in rows.items()
                  if name not in ("section", "iteration", "what") and row[kind_column].strip() not in ("-", "")
                  and not name.startswith("DDGAN") and not name.startswith("osnet")]
        assert sum(shares) == pytest.approx(100.0, abs=0.5)
    for name in ("E_c trunk", "E_c head", "E_d", "G reconstructions and swaps", "D_r", "D_d",
                 "backward (generator)", "backward (discriminator)"):
        assert name in rows
    assert any(line.startswith("| DDGAN iteration, ddgan_cpu") for line in lines)
