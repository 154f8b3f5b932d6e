"""DDGAN modules: shapes for both backbones, parameter counts against docs/method.md 3.9, swapping,
frozen parts, torchreid registration and real OSNet weights."""
import pytest
import torch
import torchreid.reid.models as torchreid_models

from direid_plugin.config import get_default_config
from direid_plugin import weights
from direid_plugin.registry import PLUGIN_MODELS
from direid_plugin.models.backbones import SUPPORTED_BACKBONES, build_trunk
from direid_plugin.models.blocks import ASPP, AdaptiveInstanceNorm2d, ClassBlock, LayerNorm
from direid_plugin.models.content_encoder import ContentEncoder
from direid_plugin.models.ddgan import DDGAN, ddgan, from_config
from direid_plugin.models.decoder import AdaINDecoder
from direid_plugin.models.degradation_encoder import DegradationEncoder
from direid_plugin.models.discriminator import MultiScaleDiscriminator
from direid_plugin.models.identity_encoder import IdentityEncoder

H, W = 64, 32


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.randn(4, 3, H, W)


@pytest.fixture(scope="module")
def osnet_ddgan():
    torch.manual_seed(0)
    return DDGAN(num_classes=5, backbone="osnet_x0_25")


@pytest.fixture(scope="module")
def resnet_encoder():
    torch.manual_seed(0)
    return ContentEncoder(1367, backbone="resnet50")


# ---- shapes ----------------------------------------------------------------------------------

def test_osnet_trunk_levels_and_strides(images):
    trunk = build_trunk("osnet_x0_25")
    assert trunk.channels == (16, 64, 96, 128)
    levels = trunk(images)
    assert [tuple(f.shape[1:]) for f in levels] == [(16, 32, 16), (64, 16, 8), (96, 8, 4), (128, 4, 2)]


def test_resnet50_content_encoder_shapes(resnet_encoder, images):
    assert resnet_encoder.trunk.channels == (64, 256, 512, 1024)
    f_inv, content = resnet_encoder(images[:2])
    assert f_inv.shape == (2, 2048)
    assert content.shape == (2, 128, H // 4, W // 4)


def test_osnet_ddgan_module_shapes(osnet_ddgan, images):
    model = osnet_ddgan.train()
    f_inv, content = model.content_encoder(images)
    assert f_inv.shape == (4, 2048) and content.shape == (4, 128, H // 4, W // 4)
    code_real = model.degradation_encoder(images)
    code_self = model.degradation_encoder(images, synthetic=True)
    assert code_real.shape == code_self.shape == (4, 128)
    assert not torch.allclose(code_real, code_self)  # two different heads
    assert model.generate(content, code_real).shape == images.shape
    assert [tuple(o.shape[1:]) for o in model.real_discriminator(images)] == [(1, 16, 8), (1, 8, 4), (1, 4, 2)]
    assert [tuple(o.shape[1:]) for o in model.degradation_discriminator(images)] == [(1, 16, 8)]
    assert model.real_discriminator.score(images).shape == (4,)


def test_single_scale_head_ablation(images):
    encoder = ContentEncoder(5, backbone="osnet_x0_25", multi_scale=False, feat_inv_dim=256)
    assert encoder.head.aspp is None and encoder.head.used_levels == [3]
    f_inv, content = encoder(images)
    assert f_inv.shape == (4, 256) and content.shape == (4, 128, H // 4, W // 4)


@pytest.mark.parametrize("content_hw", [(16, 8), (3, 5), (2, 2)])
def test_decoder_any_size_divisible_by_4(content_hw):
    decoder = AdaINDecoder()
    out = decoder(torch.randn(2, 128, *content_hw), torch.randn(2, 128))
    assert out.shape == (2, 3, 4 * content_hw[0], 4 * content_hw[1])


def test_discriminator_score_is_mean_of_patch_averages(images):
    dis = MultiScaleDiscriminator(3)
    expected = torch.stack([o.mean(dim=(1, 2, 3)) for o in dis(images)], dim=1).mean(1)
    assert torch.allclose(dis.score(images), expected)


# ---- parameter counts (docs/method.md 3.9) --------------------------------------------------------

def test_parameter_counts_match_the_official_modules(resnet_encoder):
    head = resnet_encoder.head
    assert n_params(resnet_encoder.trunk) == 8_543_296
    assert n_params(head.aspp) == 52_576
    assert n_params(head.invariance) == 2_835_200
    assert n_params(head.content_branch, head.content_fuse) == 1_139_584
    assert n_params(head.identity_branch, head.identity_fuse) == 9_608_704
    assert n_params(resnet_encoder.classifier) == 1_751_383
    assert n_params(resnet_encoder) == 23_930_743
    assert n_params(ASPP(64, 128)) == 52_576
    assert n_params(ClassBlock(2048, 1367)) == 1_751_383
    assert n_params(DegradationEncoder()) == 1_653_696
    decoder = AdaINDecoder()
    assert n_params(decoder) == 5_135_811
    assert n_params(decoder.scale_mlps, decoder.shift_mlps) == 3_680_256
    assert (n_params(decoder.res_blocks), n_params(decoder.upsample), n_params(decoder.output)) == (
        1_180_672, 256_288, 18_595)
    assert n_params(MultiScaleDiscriminator(1)) == 341_697
    assert n_params(MultiScaleDiscriminator(3)) == 1_025_091


# ---- blocks ------------------------------------------------------------------------------------

def test_layernorm_is_per_sample():
    norm = LayerNorm(8)
    x = torch.randn(3, 8, 4, 4)
    alone = norm(x[:1])
    assert torch.allclose(norm(x)[:1], alone, atol=1e-6)  # other samples do not matter
    with torch.no_grad():
        norm.gamma.fill_(1.0)
    y = norm(x[:1])
    assert abs(y.mean().item()) < 1e-5 and abs(y.std().item() - 1) < 1e-3


def test_adain_uses_given_scale_and_shift_directly():
    adain = AdaptiveInstanceNorm2d(4)
    x = torch.randn(2, 4, 8, 8) * 5 + 3
    weight, bias = torch.rand(2, 4) + 0.5, torch.randn(2, 4)
    y = adain(x, weight, bias)
    assert torch.allclose(y.mean(dim=(2, 3)), bias, atol=1e-5)
    assert torch.allclose(y.var(dim=(2, 3), unbiased=False), weight ** 2, rtol=1e-3)


# ---- swapping ----------------------------------------------------------------------------------

def test_swap_and_generate_depend_on_the_code(osnet_ddgan, images):
    model = osnet_ddgan.eval()
    x_a, x_b = images[:2], images[2:]
    with torch.no_grad():
        x_aa, x_bb, x_ab, x_ba = model.swap(x_a, x_b)
        c_a, d_a = model.decompose(x_a)
        _, d_b = model.decompose(x_b)
        assert torch.allclose(x_aa, model.generate(c_a, d_a))
        assert torch.allclose(x_ab, model.generate(c_a, d_b))
        assert not torch.allclose(model.generate(c_a, d_a), model.generate(c_a, d_b), atol=1e-4)
        assert not torch.allclose(x_aa, x_ab, atol=1e-4) and not torch.allclose(x_bb, x_ba, atol=1e-4)
        # synthetic_b switches x_b's code to the self-degradation head E'_d
        _, _, x_ab_syn, _ = model.swap(x_a, x_b, synthetic_b=True)
        assert torch.allclose(x_ab_syn, model.generate(c_a, model.degradation_encoder(x_b, synthetic=True)))


# ---- frozen parts ------------------------------------------------------------------------------

def test_frozen_trunk_gets_no_gradient_but_the_head_does(images):
    encoder = ContentEncoder(5, backbone="osnet_x0_25", freeze_trunk=True).train()
    f_inv, content = encoder(images)
    (f_inv.sum() + content.sum() + encoder.classifier(f_inv).sum()).backward()
    assert all(p.grad is None for p in encoder.trunk.parameters())
    assert all(p.grad is not None for p in encoder.head_parameters())
    assert {id(p) for p in encoder.trainable_parameters()} == {id(p) for p in encoder.head_parameters()}

    unfrozen = ContentEncoder(5, backbone="osnet_x0_25", freeze_trunk=False).train()
    unfrozen(images)[0].sum().backward()
    assert any(p.grad is not None for p in unfrozen.trunk.parameters())


def test_frozen_trunk_bn_statistics_drift_unless_trunk_bn_eval(images):
    drifting = ContentEncoder(5, backbone="osnet_x0_25").train()
    before = drifting.trunk.conv1.bn.running_mean.clone()
    drifting(images)
    assert not torch.equal(before, drifting.trunk.conv1.bn.running_mean)  # the official code's behaviour

    still = ContentEncoder(5, backbone="osnet_x0_25", trunk_bn_eval=True).train()
    assert not still.trunk.training and still.head.training
    before = still.trunk.conv1.bn.running_mean.clone()
    still(images)
    assert torch.equal(before, still.trunk.conv1.bn.running_mean)


def test_identity_encoder_stays_frozen_and_in_eval(osnet_msmt17_weights, images):
    model = DDGAN(5, backbone="osnet_x0_25", eid_name="osnet_x0_25", eid_weights=weights.read(osnet_msmt17_weights))
    eid = model.identity_encoder
    model.train()
    assert not eid.training and not any(m.training for m in eid.modules())
    assert not any(p.requires_grad for p in eid.parameters())
    assert eid.load_report.mismatched == ["classifier.bias", "classifier.weight"]  # 1041 MSMT17 ids vs 1
    x = images.clone().requires_grad_(True)
    feat = eid(x)
    assert feat.shape == (4, eid.feature_dim) == (4, 512)
    feat.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients flow through to the input
    generator_ids = {id(p) for p in model.generator_parameters()}
    assert not any(id(p) in generator_ids for p in eid.parameters())


def test_identity_encoder_requires_weights():
    with pytest.raises(ValueError, match="eid_weights"):
        IdentityEncoder("osnet_x0_25", None)


def test_parameter_groups_split_generator_and_discriminator(osnet_ddgan):
    model = osnet_ddgan
    gen = {id(p) for p in model.generator_parameters()}
    dis = {id(p) for p in model.discriminator_parameters()}
    assert not gen & dis
    expected_gen = {id(p) for m in (model.content_encoder.head, model.content_encoder.classifier,
                                    model.degradation_encoder, model.decoder) for p in m.parameters()}
    expected_dis = {id(p) for m in (model.real_discriminator, model.degradation_discriminator)
                    for p in m.parameters()}
    assert gen == expected_gen and dis == expected_dis
    assert len(gen) + len(dis) + len(list(model.content_encoder.trunk.parameters())) == len(list(model.parameters()))


# ---- torchreid integration ---------------------------------------------------------------------

def test_build_model_through_torchreid(images):
    model = torchreid_models.build_model("ddgan", num_classes=5, loss="softmax", pretrained=False, use_gpu=False)
    assert isinstance(model, DDGAN)
    with torch.no_grad():
        assert model.eval()(images).shape == (4, 2048)
        assert model.train()(images).shape == (4, 5)


def test_triplet_forward_returns_logits_and_feature(images):
    model = ddgan(5, loss="triplet", pretrained=False, use_gpu=False, feat_inv_dim=256)
    logits, f_inv = model.train()(images)
    assert logits.shape == (4, 5) and f_inv.shape == (4, 256)


def test_factory_rejects_unknown_options_and_backbones():
    with pytest.raises(TypeError, match="backbone_wieghts"):
        ddgan(5, pretrained=False, backbone_wieghts="x")
    with pytest.raises(ValueError, match="osnet_x0_25"):
        ddgan(5, pretrained=False, backbone="vgg16")
    assert "resnet50" in SUPPORTED_BACKBONES


def test_from_config_builds_the_default_model(images):
    cfg = get_default_config()
    cfg.ddgan.feat_inv_dim = 128
    kwargs = from_config(cfg)
    assert PLUGIN_MODELS["ddgan"].config_kwargs is from_config
    assert kwargs["backbone"] == "osnet_x0_25" and kwargs["dd_scales"] == 1
    model = ddgan(3, pretrained=False, **kwargs)
    assert model.eval()(images).shape == (4, 128)


def test_osnet_reid_weights_load_into_the_trunk(osnet_msmt17_weights):
    trunk = build_trunk("osnet_x0_25")
    before = trunk.conv1.conv.weight.clone()
    report = trunk.load_weights(weights.read(osnet_msmt17_weights))
    assert not torch.equal(before, trunk.conv1.conv.weight)
    assert report.missing == [] and report.mismatched == []
    assert len(report.loaded) == len(trunk.state_dict())
    assert {k.split(".")[0] for k in report.unexpected} == {"conv5", "fc", "classifier"}
    saved = torch.load(osnet_msmt17_weights, map_location="cpu", weights_only=True)
    assert torch.equal(trunk.conv4[0].conv1.conv.weight, saved["conv4.0.conv1.conv.weight"])


def test_backbone_weights_option_loads_through_ddgan(osnet_msmt17_weights):
    model = ddgan(5, pretrained=False, backbone_weights=osnet_msmt17_weights)
    saved = torch.load(osnet_msmt17_weights, map_location="cpu", weights_only=True)
    assert torch.equal(model.content_encoder.trunk.conv1.conv.weight, saved["conv1.conv.weight"])


def test_weights_for_another_backbone_are_refused(osnet_msmt17_weights):
    with pytest.raises(weights.CheckpointError, match="no tensor fits ResNetTrunk"):
        build_trunk("resnet18", weights=weights.read(osnet_msmt17_weights))
