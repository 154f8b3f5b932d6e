"""Stage-1 engine: which parameters each loss moves, both iteration kinds, exact resume, overfitting."""
import glob
import os

import numpy as np
import pytest
import torch
import torchreid
from PIL import Image

from direid_plugin import losses as L
from direid_plugin import build
from direid_plugin.config import load_config
from direid_plugin.engines.ddgan_engine import DDGANEngine
from direid_plugin.engines.ddgan_trainer import milestones
from direid_plugin.models.ddgan import DDGAN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL = os.path.join(REPO, "configs", "ddgan", "ddgan_official.yaml")
PAPER = os.path.join(REPO, "configs", "ddgan", "ddgan_paper.yaml")


def _cfg(tmp_path, *opts, config=OFFICIAL):
    return load_config(config, [
        "data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']",
        "data.height", "64", "data.width", "32", "data.workers", "0", "data.save_dir", str(tmp_path / "run"),
        "ddgan.batch_size", "4", "ddgan.feat_inv_dim", "64", "engine.progress", "False",
        "ddgan.log_freq", "1", "ddgan.image_freq", "0", "ddgan.checkpoint_freq", "0", *opts])


def _engine(cfg):
    torchreid.utils.set_random_seed(cfg.train.seed)
    dm = build.build_datamanager(cfg)
    model = build.build_model(cfg, dm.num_train_pids)
    return DDGANEngine(dm, model, cfg, use_gpu=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))


def _modules(model):
    return {
        "content_head": model.content_encoder.head, "classifier": model.content_encoder.classifier,
        "trunk": model.content_encoder.trunk, "degradation_encoder": model.degradation_encoder,
        "decoder": model.decoder, "real_discriminator": model.real_discriminator,
        "degradation_discriminator": model.degradation_discriminator,
    }


def _grad_modules(model):
    """Names of the modules whose parameters received a non-zero gradient."""
    return {name for name, module in _modules(model).items()
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())}


def _batch(engine):
    return next(iter(engine.pairs))


@pytest.mark.parametrize("self_iteration", [True, False])
def test_each_loss_term_reaches_only_its_modules(cache, tmp_path, self_iteration):
    engine = _engine(_cfg(tmp_path))
    model, data = engine.model, _batch(engine)
    x_a, x_b = data["hr"], data["deg"] if self_iteration else data["lr"]
    pids = (data["hr_pid"], data["lr_pid"])
    generator_side = {"content_head", "degradation_encoder", "decoder"}
    expected = {
        # term: modules it must reach (and nothing else among the tracked ones)
        "D_real": {"real_discriminator"},
        "D_deg": {"degradation_discriminator"},
        "G_real": generator_side | {"real_discriminator"},
        "G_deg": generator_side | {"degradation_discriminator"},
        "G_rec": generator_side,
        "G_cross_rec": generator_side,
        "G_inv": {"content_head"},
        "G_cycle": generator_side,
        "G_id": {"content_head", "classifier"},
    }
    seen = set()
    for kind in ("D", "G"):
        model.zero_grad(set_to_none=True)
        out = engine.trainer._forward(x_a, x_b, synthetic_b=self_iteration)
        gp = engine.cfg.ddgan.grad_penalty
        _, terms = (engine.trainer._d_loss(x_a, x_b, out, self_iteration, None, gp) if kind == "D"
                    else engine.trainer._g_loss(x_a, x_b, out, self_iteration, None, pids))
        for name, value in terms.items():
            model.zero_grad(set_to_none=True)
            value.backward(retain_graph=True)
            assert _grad_modules(model) == expected[name], name
            seen.add(name)
    # The frozen trunk never gets a gradient; each iteration kind has its own terms.
    assert ({"G_inv", "G_cross_rec"} <= seen) == self_iteration
    assert ({"G_id", "G_cycle"} <= seen) == (not self_iteration)


def test_d_step_leaves_generator_untouched_and_g_step_leaves_discriminators(cache, tmp_path):
    engine = _engine(_cfg(tmp_path))
    model, data = engine.model, _batch(engine)
    out = engine.trainer._forward(data["hr"], data["deg"], synthetic_b=True)
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    d_loss, _ = engine.trainer._d_loss(data["hr"], data["deg"], out, True, None, engine.cfg.ddgan.grad_penalty)
    engine.trainer._step(d_loss, engine.trainer.optimizer_d, "discriminator")
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, snapshot[k])}
    assert changed and all(k.startswith(("real_discriminator.", "degradation_discriminator.")) for k in changed)

    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    g_loss, _ = engine.trainer._g_loss(data["hr"], data["deg"], out, True, None, (data["hr_pid"], data["lr_pid"]))
    engine.trainer._step(g_loss, engine.trainer.optimizer, "generator")
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, snapshot[k])}
    assert any(k.startswith("decoder.") for k in changed)
    assert not any(k.startswith(("real_discriminator.", "degradation_discriminator.")) for k in changed)
    # The frozen trunk's weights do not move (its BatchNorm statistics may, as in the official code).
    assert not any(k.startswith("content_encoder.trunk.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                   for k in changed)


def test_paper_variant_ranking_label_and_identity_preserving(cache, tmp_path, osnet_msmt17_weights):
    cfg = _cfg(tmp_path, "ddgan.eid_weights", osnet_msmt17_weights, config=PAPER)
    engine = _engine(cfg)
    assert cfg.ddgan.real_deg == "ranking" and cfg.ddgan.gan_type == "nsgan" and engine.model.identity_encoder is not None
    summary_self = engine.forward_backward(_batch(engine))
    summary_real = engine.forward_backward(_batch(engine))
    assert "G_pre" in summary_self and "G_pre" in summary_real and "G_cross_rec" not in summary_self
    assert "G_cycle" not in summary_real
    # Eq. 10: D_d's own order decides which real image is the higher-quality one.
    data = _batch(engine)
    label = L.rank_label(engine.model.degradation_discriminator, data["hr"], data["lr"])
    scores_hr = engine.model.degradation_discriminator.score(data["hr"])
    scores_lr = engine.model.degradation_discriminator.score(data["lr"])
    assert torch.equal(label, torch.where(scores_hr >= scores_lr, 1.0, -1.0))
    assert not any(p.requires_grad for p in engine.model.identity_encoder.parameters())


@pytest.mark.slow
def test_iterations_alternate_and_schedule(cache, tmp_path):
    engine = _engine(_cfg(tmp_path, "ddgan.lr_step", "4"))
    assert milestones(20000) == [20000, 30000, 35000]
    first, second = engine.forward_backward(_batch(engine)), engine.forward_backward(_batch(engine))
    assert "G_inv" in first and "G_id" not in first  # iteration 1: self-degradation
    assert "G_id" in second and "G_inv" not in second  # iteration 2: real cross-degradation
    assert all(np.isfinite(v) for v in {**first, **second}.values())
    for _ in range(3):
        engine.forward_backward(_batch(engine))
    assert engine.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # past milestone 4
    assert engine.trainer.optimizer_d.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_swapping_codes_changes_the_output_and_swapping_back_restores_it(cache, tmp_path):
    engine = _engine(_cfg(tmp_path))
    model, data = engine.model.eval(), _batch(engine)
    with torch.no_grad():
        c_a, d_a = model.decompose(data["hr"])
        _, d_b = model.decompose(data["lr"])
        x_aa, x_ab = model.generate(c_a, d_a), model.generate(c_a, d_b)
        assert (x_aa - x_ab).abs().mean() > 1e-3
        assert torch.equal(model.generate(c_a, d_a), x_aa)  # no state carried between decodings


def _weights(engine):
    return {k: v.clone() for k, v in engine.model.state_dict().items()}


@pytest.mark.slow
def test_resume_is_exact(cache, tmp_path):
    n = 3
    straight = _engine(_cfg(tmp_path / "a", "ddgan.max_iter", str(2 * n)))
    straight.run(save_dir=str(tmp_path / "a" / "run"))
    expected = _weights(straight)

    first = _engine(_cfg(tmp_path / "b", "ddgan.max_iter", str(n)))
    first.run(save_dir=str(tmp_path / "b" / "run"))
    second = _engine(_cfg(tmp_path / "b", "ddgan.max_iter", str(2 * n)))
    assert second.resume("auto", str(tmp_path / "b" / "run")) == n
    second.run(save_dir=str(tmp_path / "b" / "run"))
    got = _weights(second)
    for key, value in expected.items():
        assert torch.equal(value, got[key]), key
    ckpts = sorted(glob.glob(str(tmp_path / "b" / "run" / "ddgan" / "model.pth.tar-*")))
    state = torchreid.utils.load_checkpoint(ckpts[-1])  # torchreid's own loader reads it
    assert state["iteration"] == 2 * n and {"optimizer_d", "scheduler_d", "scaler", "rng", "pair_stream"} <= set(state)


@pytest.mark.slow
def test_cli_run_writes_checkpoints_grids_and_results(cache, tmp_path):
    from direid_plugin.cli import train as cli_train

    save_dir = tmp_path / "cli"
    args = ["--config-file", OFFICIAL, "data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']",
            "data.height", "64", "data.width", "32", "data.workers", "0", "data.save_dir", str(save_dir),
            "ddgan.batch_size", "4", "ddgan.feat_inv_dim", "64", "engine.progress", "False",
            "ddgan.max_iter", "4", "ddgan.image_freq", "2", "ddgan.checkpoint_freq", "2"]
    cli_train.main(args)
    assert len(glob.glob(str(save_dir / "images" / "ddgan_*.jpg"))) == 2
    assert os.path.exists(save_dir / "ddgan" / "model.pth.tar-4") and os.path.exists(save_dir / "results.json")
    grid = Image.open(sorted(glob.glob(str(save_dir / "images" / "ddgan_*.jpg")))[0])
    assert grid.size[0] > 6 * 32  # six columns: x_a, x_aa, x_b, x_bb, x_ab, x_ba
    cli_train.main(args + ["ddgan.max_iter", "6", "model.resume", "auto"])
    assert os.path.exists(save_dir / "ddgan" / "model.pth.tar-6")
    # The resumed run's clock starts from the first run's recorded seconds.
    seconds = [torch.load(save_dir / "ddgan" / f"model.pth.tar-{i}", weights_only=True)["train_seconds"] for i in (4, 6)]
    assert 0 < seconds[0] < seconds[1]


@pytest.mark.slow
def test_reconstruction_overfits_real_viper_pairs(viper_root):
    """On 4 real VIPeR images and their down-sampled copies, the reconstruction loss falls far."""
    from direid_plugin.data.degradations import downsample
    from direid_plugin.data.pairs import pair_transform

    torch.manual_seed(0)
    paths = sorted(glob.glob(os.path.join(viper_root, "VIPeR", "cam_a", "*.bmp")))[:4]
    transform = pair_transform(64, 32)
    images = [Image.open(p).convert("RGB") for p in paths]
    x_a = torch.stack([transform(img) for img in images])
    x_b = torch.stack([transform(downsample(img, 3.0)) for img in images])
    model = DDGAN(4, feat_inv_dim=64)
    optimizer = torch.optim.Adam(model.generator_parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        x_aa, x_bb, x_ab, x_ba = model.swap(x_a, x_b, synthetic_b=True)
        loss = L.pixel_loss(x_aa, x_a) + L.pixel_loss(x_bb, x_b) + L.pixel_loss(x_ab, x_b) + L.pixel_loss(x_ba, x_a)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.35 * losses[0], (losses[0], losses[-1])


def test_nonfinite_batch_is_skipped_and_persistent_nan_stops(cache, tmp_path):
    from direid_plugin.engines.guards import TrainingDiverged

    engine = _engine(_cfg(tmp_path, "engine.max_nonfinite_steps", "2"))
    data = _batch(engine)
    poisoned = dict(data, hr=torch.full_like(data["hr"], float("nan")))
    before = _weights(engine)
    engine.forward_backward(poisoned)  # both steps skipped: nothing moves
    after = _weights(engine)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert engine.trainer.guard.skipped == 2
    engine.forward_backward(data)  # a good batch resets the run of skips
    assert engine.trainer.guard.consecutive["generator"] == 0
    with pytest.raises(TrainingDiverged):
        for _ in range(3):
            engine.forward_backward(poisoned)


def test_stage1_trains_on_self_degraded_pairs_made_by_the_benchmark_corruptions(cache, tmp_path):
    engine = _engine(_cfg(tmp_path, "degradation.kinds", "['corruption.random']"))
    assert engine.pairs.dataset.degrade.names == ["corruption.random"]
    losses = engine.forward_backward(_batch(engine))  # iteration 1: a self-degradation step
    assert "G_inv" in losses and all(np.isfinite(v) for v in losses.values())
