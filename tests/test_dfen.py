"""Stage 2 (DFEN): model outputs, attention, heads and gradients, stage-1 loading, memory replay, CLI run."""
import json
import os

import pytest
import torch
import torchreid

from direid_plugin import build, run
from direid_plugin import weights as weights_module
from direid_plugin.config import load_config
from direid_plugin.engines.checkpointing import save_checkpoint
from direid_plugin.models.ddgan import DDGAN
from direid_plugin.models.dfen import DFEN, dfen
from direid_plugin.weights import CheckpointError, read as read_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL = os.path.join(REPO, "configs", "dfen", "dfen_official.yaml")
PAPER = os.path.join(REPO, "configs", "dfen", "dfen_paper.yaml")
NUM_IDS = 8  # synthetic_mlr_tiny's training identities
FEAT_INV = 64  # a small f_inv keeps the tests fast


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))


def _write_ddgan(path, feat_inv_dim=FEAT_INV, multi_scale=True):
    """A stage-1 checkpoint in the DDGAN engine's format (``state_dict`` = the whole DDGAN state)."""
    torch.manual_seed(0)
    ddgan = DDGAN(NUM_IDS, feat_inv_dim=feat_inv_dim, multi_scale=multi_scale)
    save_checkpoint({"state_dict": ddgan.state_dict(), "iteration": 2}, str(path))
    return ddgan


@pytest.fixture
def stage1(tmp_path):
    path = tmp_path / "stage1" / "ddgan" / "model.pth.tar-2"
    return path, _write_ddgan(path)


def _opts(tmp_path, checkpoint, weights, *extra):
    return ["data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']", "data.height", "64",
            "data.width", "32", "data.workers", "0", "data.save_dir", str(tmp_path / "run"), "train.batch_size", "8",
            "test.batch_size", "16", "ddgan.feat_inv_dim", str(FEAT_INV), "engine.progress", "False",
            "dfen.ddgan_checkpoint", str(checkpoint), "dfen.sen_weights", weights, *extra]


def _engine(cfg):
    """The engine of a run of ``cfg`` (build.py, through the registry)."""
    return build.build_run(cfg)


def _batch(engine):
    data = next(iter(engine.train_loader))
    return data["img"], data["pid"]


def test_builds_through_torchreid_and_feature_extractor_gives_the_eval_feature(tmp_path):
    model = torchreid.models.build_model("dfen", NUM_IDS, pretrained=False, use_gpu=False)
    assert isinstance(model, DFEN) and model.feature_dim == 2048 + 512  # bnneck fused: f_inv + osnet f_sen
    path = tmp_path / "dfen.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    extractor = torchreid.utils.FeatureExtractor("dfen", model_path=str(path), image_size=(64, 32), device="cpu",
                                                 verbose=False)
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        expected = model.eval()(x)
    assert torch.allclose(extractor(x), expected, atol=1e-5)


@pytest.mark.parametrize("head, dims", [("classblock", {"fused": 1024, "inv": 512, "sen": 512}),
                                        ("bnneck", {"fused": FEAT_INV + 512, "inv": FEAT_INV, "sen": 512})])
def test_eval_feature_dimensions(head, dims):
    x = torch.randn(3, 3, 64, 32)
    torch.manual_seed(0)
    reference = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, head=head).eval()
    for test_feature, dim in dims.items():
        model = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, head=head, test_feature=test_feature).eval()
        model.load_state_dict(reference.state_dict())
        with torch.no_grad():
            feature = model(x)
            f_inv, f_sen, _ = model.branch_features(x)
        assert feature.shape == (3, dim) and model.feature_dim == dim
        if test_feature == "fused" and head == "classblock":  # official: concat of the two bottlenecks
            expected = torch.cat([model.heads["inv"].embed(f_inv), model.heads["sen"].embed(f_sen)], 1)
            assert torch.allclose(feature, expected)


def test_guided_attention_follows_the_degradation_discriminator():
    torch.manual_seed(0)
    model = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, attention="guided")
    dd = model.degradation_discriminator
    with torch.no_grad():  # N(0, 0.02) init scores are ~1e-5: give D_d the scale of a trained one
        for p in dd.parameters():
            p.normal_(0.0, 0.3)
    x = torch.randn(4, 3, 64, 32)
    out = model(x)
    weights = out["attention"]
    assert weights.shape == (4, 512) and bool(((weights > 0) & (weights < 1)).all())
    raw_sen = model.sensitive_encoder(x)
    assert torch.allclose(out["f_sen"], raw_sen * weights, atol=1e-6)

    model.eval()
    with torch.no_grad():
        before, sen_before = model.attention_weights(x, None), model(x)
        blurred = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 4), scale_factor=4.0)
        assert (dd.score(blurred) - dd.score(x)).abs().min() > 1e-2
        assert (model.attention_weights(blurred, None) - before).abs().max() > 1e-3  # other quality, other weights
        for p in dd.parameters():
            p.mul_(1.5)
        after = model.attention_weights(x, None)
    assert (after - before).abs().max() > 1e-3  # another D_d, other weights for the same images
    assert not torch.allclose(model(x), sen_before)

    # D_d is frozen: a training loss leaves it without gradients.
    model.train()
    model(x)["logits_fused"].sum().backward()
    assert all(p.grad is None for p in dd.parameters()) and model.attention.to_weights.weight.grad is not None


def test_without_attention_there_are_no_weights_and_self_attention_ignores_dd():
    torch.manual_seed(0)
    none = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, attention="none")
    out = none(torch.randn(4, 3, 64, 32))
    assert "attention" not in out and none.attention is None and none.degradation_discriminator is None
    own = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, attention="self")
    assert own.degradation_discriminator is None and own(torch.randn(4, 3, 64, 32))["attention"].shape == (4, 512)
    with pytest.raises(ValueError, match="dfen.attention"):
        DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, use_dil=False, attention="guided")


def _grad_parts(model):
    parts = {"trunk": model.content_encoder.trunk, "inv_branch": model.content_encoder.head,
             "sen_branch": model.sensitive_encoder, "attention": model.attention, **dict(model.heads.items())}
    return {name for name, module in parts.items() if module is not None
            and any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())}


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_each_loss_term_reaches_its_head_and_the_fused_loss_both_branches(cache, tmp_path, stage1,
                                                                          osnet_msmt17_weights, shared_trunk):
    cfg = load_config(PAPER, _opts(tmp_path, stage1[0], osnet_msmt17_weights, "dfen.shared_trunk", str(shared_trunk),
                                   "sampler.num_instances", "4"))
    engine = _engine(cfg)
    imgs, pids = _batch(engine)
    assert len(set(pids.tolist())) == 2  # P x K batches for the hard-mined triplet loss
    sen_trunk = {"trunk"} if shared_trunk else set()
    expected = {"inv": {"trunk", "inv_branch", "inv"},
                "sen": sen_trunk | {"sen_branch", "attention", "sen"},
                "fused": {"trunk", "inv_branch", "sen_branch", "attention", "fused"}}
    model = engine.model
    engine.two_stepped_transfer_learning(0, 0, None)  # torchreid's open_all_layers, as at each epoch start
    assert model.fixed_parameters() and not any(p.requires_grad for p in model.fixed_parameters())  # D_d, BN shifts
    for branch, parts in expected.items():
        engine.branch_weights = {b: float(b == branch) for b in expected}
        model.zero_grad(set_to_none=True)
        loss, summary = engine.identity_loss(model(imgs), pids)
        loss.backward()
        assert _grad_parts(model) == parts, branch
        assert set(summary) == {f"loss_{branch}_x", f"loss_{branch}_t"} and summary[f"loss_{branch}_x"] > 0


def test_stage1_checkpoint_loads_into_dfen(cache, tmp_path, stage1, osnet_msmt17_weights):
    path, ddgan = stage1
    cfg = load_config(OFFICIAL, _opts(tmp_path, path, osnet_msmt17_weights, "dfen.attention", "guided"))
    model = build.build_model(cfg, NUM_IDS)
    source = ddgan.state_dict()
    own = model.state_dict()
    for prefix in ("content_encoder.trunk.", "content_encoder.head.", "degradation_discriminator."):
        keys = [k for k in source if k.startswith(prefix)]
        assert keys and all(torch.equal(own[k], source[k]) for k in keys), prefix
    classifier = {k[len("content_encoder.classifier."):]: v for k, v in source.items()
                  if k.startswith("content_encoder.classifier.")}
    assert all(torch.equal(model.heads["inv"].state_dict()[k], v) for k, v in classifier.items())  # classblock head
    file_weights = torch.load(osnet_msmt17_weights, map_location="cpu", weights_only=True)
    file_weights = file_weights.get("state_dict", file_weights)
    assert torch.equal(model.sensitive_encoder.model.fc[0].weight, file_weights["fc.0.weight"])

    # w/o DIL: E_c keeps its own init; nothing is read from stage 1.
    cfg = load_config(OFFICIAL, _opts(tmp_path, path, osnet_msmt17_weights, "dfen.use_dil", "False"))
    trunk_key = next(k for k in source if k.startswith("content_encoder.trunk.") and k.endswith("weight"))
    assert not torch.equal(build.build_model(cfg, NUM_IDS).state_dict()[trunk_key], source[trunk_key])


def test_wrong_or_missing_stage1_checkpoint_errors_clearly(tmp_path):
    wrong = tmp_path / "wrong" / "model.pth.tar-2"
    _write_ddgan(wrong, feat_inv_dim=32)
    with pytest.raises(CheckpointError, match=r"model\.pth\.tar-2.*content_encoder\.head.*identity_fuse"):
        dfen(NUM_IDS, pretrained=False, feat_inv_dim=FEAT_INV, ddgan_checkpoint=str(wrong))
    missing = tmp_path / "nowhere.pth.tar"
    with pytest.raises(CheckpointError, match=r"dfen\.ddgan_checkpoint.*nowhere\.pth\.tar"):
        dfen(NUM_IDS, pretrained=False, feat_inv_dim=FEAT_INV, ddgan_checkpoint=str(missing))
    # Table 3 "w/o multi-scale": a single-level E_c loads a single-level stage 1, not a multi-scale one.
    single = tmp_path / "single" / "model.pth.tar-2"
    ddgan = _write_ddgan(single, multi_scale=False)
    model = DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, multi_scale=False, ddgan_checkpoint=read_weights(str(single))).eval()
    assert torch.equal(model.content_encoder.head.identity_fuse[1].weight,
                       ddgan.content_encoder.head.identity_fuse[1].weight)
    assert model(torch.randn(2, 3, 64, 32)).shape == (2, FEAT_INV + 512)
    with pytest.raises(CheckpointError, match="content_encoder.head"):
        DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, multi_scale=False, ddgan_checkpoint=read_weights(str(wrong)))
    with pytest.raises(ValueError, match="dfen.shared_trunk: resnet50.layer4 expects 1024"):
        DFEN(NUM_IDS, feat_inv_dim=FEAT_INV, sen_backbone="resnet50", shared_trunk=True)


def test_memory_replay_re_degrades_and_trains_only_through_the_augmented_branch(cache, tmp_path, stage1,
                                                                                 osnet_msmt17_weights, monkeypatch):
    cfg = load_config(OFFICIAL, _opts(tmp_path, stage1[0], osnet_msmt17_weights))
    reads = []
    load_checkpoint = weights_module.load_checkpoint
    monkeypatch.setattr(weights_module, "load_checkpoint", lambda path, *a, **k: reads.append(path) or load_checkpoint(path, *a, **k))
    engine = _engine(cfg)
    engine.prepare_training()
    # The model and the replay copy share one read of the stage-1 checkpoint.
    assert reads.count(str(stage1[0])) == 1
    replay, model = engine.replay, engine.model
    train_items = engine.datamanager.train_loader.dataset.train
    assert replay.bank.shape == (len(train_items), 128)
    image = engine.datamanager.transform_te(torchreid.utils.read_image(train_items[0][0]))[None]
    with torch.no_grad():
        code = (replay.degradation_encoder(image) + replay.degradation_encoder(image.flip(3))) / 2
    assert torch.allclose(replay.bank[0], code[0], atol=1e-5)

    imgs, pids = _batch(engine)
    x_aug = replay.augment(imgs)
    assert x_aug.shape == imgs.shape and not x_aug.requires_grad
    assert (x_aug - imgs).abs().mean() > 0.1 and (replay.augment(imgs) - x_aug).abs().mean() > 1e-4

    logits_inv = model(imgs)["logits_inv"]
    kl = engine.replay_loss(imgs, logits_inv)
    inv_weight = model.heads["inv"].classifier.weight
    sen_weight = model.heads["sen"].classifier.weight
    g_clean, g_inv, g_sen = torch.autograd.grad(kl, [logits_inv, inv_weight, sen_weight], allow_unused=True)
    assert kl > 0 and g_clean is None and g_sen is None and g_inv.abs().sum() > 0

    frozen = {k: v.clone() for k, v in replay.state_dict().items()}
    summary = engine.forward_backward({"img": imgs, "pid": pids})
    after = replay.state_dict()
    assert summary["loss_replay"] > 0 and all(torch.equal(v, after[k]) for k, v in frozen.items())


@pytest.mark.slow
def test_cli_stage2_run_writes_checkpoints_and_results(cache, tmp_path, stage1, osnet_msmt17_weights):
    from direid_plugin.cli import test as cli_test
    from direid_plugin.cli import train as cli_train

    args = ["--config-file", OFFICIAL, *_opts(tmp_path, stage1[0], osnet_msmt17_weights, "train.max_epoch", "1",
                                              "test.single_shot_trials", "2")]
    cli_train.main(args)
    save_dir = tmp_path / "run"
    ckpt = save_dir / "model" / "model.pth.tar-1"
    state = torchreid.utils.load_checkpoint(str(ckpt))
    assert state["epoch"] == 1 and state["optimizer"]["state"]
    initial = build.build_model(load_config(OFFICIAL, _opts(tmp_path, stage1[0], osnet_msmt17_weights)), NUM_IDS)
    key = "heads.fused.classifier.weight"
    assert not torch.equal(state["state_dict"][key], initial.state_dict()[key])  # it trained
    trained = json.loads((save_dir / "results.json").read_text())["results"]["synthetic_mlr_tiny"]
    assert trained["protocol"] == "single_shot" and 0 <= trained["rank1"] <= 1

    cli_test.main(["--config-file", OFFICIAL, *_opts(tmp_path / "eval", stage1[0], osnet_msmt17_weights,
                                                      "test.single_shot_trials", "2", "model.load_weights", str(ckpt))])
    tested = json.loads((tmp_path / "eval" / "run" / "test_results.json").read_text())["results"]["synthetic_mlr_tiny"]
    assert tested["rank1"] == pytest.approx(trained["rank1"]) and tested["mAP"] == pytest.approx(trained["mAP"])


def test_resample_replay_lowers_detail_with_seeded_factors():
    from direid_plugin.config import get_default_config
    from direid_plugin.data.degradations import build_degradation
    from direid_plugin.engines.memory_replay import ResampleReplay

    node = get_default_config().degradation  # kinds ['resolution'], U[2, 4]
    x = torch.rand(4, 3, 64, 32)
    a, b = (ResampleReplay(build_degradation(node), seed=3).augment(x) for _ in range(2))
    assert torch.equal(a, b) and a.shape == x.shape
    # Down-and-up sampling removes the high frequencies of a noise image: neighbouring pixels agree more.
    detail = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()
    assert detail(a) < 0.6 * detail(x)
    # A kind without a tensor path is refused by name, not silently skipped.
    node.kinds = ["resolution", "jpeg"]
    with pytest.raises(ValueError, match=r"dfen.memory_replay 'resample'.*\['jpeg'\] have no tensor path"):
        ResampleReplay(build_degradation(node))


@pytest.mark.slow
def test_resume_continues_the_resample_replay_stream_and_matches_an_uninterrupted_run(cache, tmp_path, stage1,
                                                                                       osnet_msmt17_weights):
    from direid_plugin.cli import train as cli_train

    def train(save_dir, epochs, *extra):
        cli_train.main(["--config-file", OFFICIAL, *_opts(save_dir, stage1[0], osnet_msmt17_weights,
                                                          "dfen.memory_replay", "resample", "train.max_epoch", str(epochs),
                                                          "test.eval_freq", "1", "test.single_shot_trials", "1", *extra)])
        return torch.load(save_dir / "run" / "model" / f"model.pth.tar-{epochs}", weights_only=True)

    uninterrupted = train(tmp_path / "reference", 2)
    first = train(tmp_path / "interrupted", 1)
    assert "replay_rng" in first and "scaler" in first
    resumed = train(tmp_path / "interrupted", 2, "model.resume", "auto")
    unequal = [k for k, v in uninterrupted["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert unequal == []
    assert resumed["replay_rng"] == uninterrupted["replay_rng"] != first["replay_rng"]


def test_engine_auto_picks_the_plugin_models_engine_and_a_mismatch_is_a_config_error(cache, tmp_path, stage1,
                                                                                     osnet_msmt17_weights):
    from direid_plugin.config import ConfigError
    from direid_plugin.build import engine_name

    assert engine_name(load_config(OFFICIAL, ["engine.name", "auto", "loss.name", "softmax"])) == "dfen"
    assert engine_name(load_config(None, ["model.name", "ddgan", "loss.name", "triplet"])) == "ddgan"
    assert engine_name(load_config(None, ["model.name", "osnet_x0_25", "loss.name", "triplet"])) == "triplet"
    opts = _opts(tmp_path, stage1[0], osnet_msmt17_weights, "train.max_epoch", "1")
    with pytest.raises(ConfigError, match="model.name 'dfen' trains with engine 'dfen', not 'softmax'"):
        run.train(load_config(OFFICIAL, opts + ["engine.name", "softmax"]))
    with pytest.raises(ConfigError, match="engine 'dfen' trains model.name 'dfen', not 'osnet_x0_25'"):
        run.train(load_config(OFFICIAL, opts + ["model.name", "osnet_x0_25"]))
