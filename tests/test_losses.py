"""Stage-1 losses: values on hand-computed inputs, the ranking sign convention, Eq. 10's label rule,
and which tensors each loss sends gradients to."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from direid_plugin.losses import (content_invariance_loss, d_adversarial, discriminator_loss, g_adversarial,
                                  generator_loss, gradient_penalty, identification_loss, identity_preserving_loss,
                                  kl_detach, margin_ranking, order_pair, pixel_loss, rank_label, ranking_d_loss,
                                  ranking_g_loss)
from direid_plugin.models.discriminator import MultiScaleDiscriminator
from direid_plugin.models.identity_encoder import IdentityEncoder
from direid_plugin.weights import read as read_weights


def const_maps(*values):
    """One (B=len(values), 1, 2, 2) patch map per call, each image's map filled with its value."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


class BrightnessDis(nn.Module):
    """A two-scale 'discriminator' scoring quality as w * brightness: easy to reason about by hand."""

    def __init__(self, w=1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        m = self.w * x.mean(1, keepdim=True)
        return [m, F.avg_pool2d(m, 2)]


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 3, 64, 32)


# ---- GAN ---------------------------------------------------------------------------------------

def test_lsgan_values_by_hand():
    fake, real = [const_maps(0.5, -0.5)], [const_maps(1.0, 3.0)]
    # D: mean(fake^2) + mean((real - 1)^2) = 0.25 + (0 + 4) / 2
    assert d_adversarial(fake, real, "lsgan").item() == pytest.approx(2.25)
    # G: 2 * mean((fake - 1)^2) = 2 * (0.25 + 2.25) / 2; with target 0: 2 * 0.25
    assert g_adversarial(fake, 1.0, "lsgan").item() == pytest.approx(2.5)
    assert g_adversarial(fake, 0.0, "lsgan").item() == pytest.approx(0.5)
    # two scales are averaged
    two = d_adversarial(fake + [const_maps(0.0, 0.0)], real + [const_maps(1.0, 1.0)], "lsgan")
    assert two.item() == pytest.approx((2.25 + 0.0) / 2)


def test_nsgan_values_by_hand():
    fake, real = [const_maps(0.0, 0.0)], [const_maps(0.0, 0.0)]
    # -log(sigmoid(0)) - log(1 - sigmoid(0)) = 2 log 2
    assert d_adversarial(fake, real, "nsgan").item() == pytest.approx(2 * math.log(2))
    assert g_adversarial([const_maps(2.0, 2.0)], 1.0, "nsgan").item() == pytest.approx(math.log1p(math.exp(-2)))


def test_unknown_gan_type_is_refused():
    with pytest.raises(ValueError, match="lsgan"):
        d_adversarial([const_maps(0.0)], [const_maps(0.0)], "wgan")


def test_gradient_penalty_by_hand_and_zero_for_a_constant_discriminator(images):
    x = images.clone().requires_grad_(True)
    # D(x) = 3 x: d sum / dx = 3 everywhere, so ||grad||^2 = 9 * C * H * W per image
    assert gradient_penalty([3 * x], x).item() == pytest.approx(9 * 3 * 64 * 32)
    dis = MultiScaleDiscriminator(2)
    assert gradient_penalty(dis(x), x).item() > 0
    with torch.no_grad():
        for net in dis.scales:
            net[-1].weight.zero_()  # the output is its bias alone: a constant discriminator
    assert gradient_penalty(dis(x), x).item() == 0.0


def test_discriminator_loss_trains_only_the_discriminator(images):
    # float64, so that the tiny penalty of a freshly initialised D is not lost in rounding
    images = images.double()
    generator = nn.Conv2d(3, 3, 1).double()
    dis = MultiScaleDiscriminator(2).double()
    fake = generator(images)
    loss = discriminator_loss(dis, fake, images, "lsgan", gp_weight=0.01)
    loss.backward()
    assert generator.weight.grad is None
    assert all(p.grad is not None for p in dis.parameters())
    no_gp = discriminator_loss(dis, fake, images, "lsgan", gp_weight=0.0)
    real = images.clone().requires_grad_(True)
    gp = gradient_penalty(dis(real), real)
    assert gp.item() > 0
    assert (loss - no_gp).item() == pytest.approx(0.01 * gp.item(), rel=1e-6)


def test_generator_loss_reaches_the_generator(images):
    generator = nn.Conv2d(3, 3, 1)
    dis = MultiScaleDiscriminator(1)
    generator_loss(dis, [generator(images)], [1.0], "nsgan").backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("gan_type", ["lsgan", "nsgan"])
def test_batched_discriminator_calls_give_the_separate_calls_losses(images, gan_type):
    """D goes through one batched call for several image batches (a CPU saving); D has no
    batch-dependent layer, so the losses are those of one call per batch."""
    torch.manual_seed(1)
    dis = MultiScaleDiscriminator(2).double()
    fake_a, fake_b, real = (torch.randn(2, 3, 64, 32, dtype=torch.float64) for _ in range(3))
    separate = g_adversarial(dis(fake_a), 0.0, gan_type) + g_adversarial(dis(fake_b), 1.0, gan_type)
    assert generator_loss(dis, [fake_a, fake_b], [0.0, 1.0], gan_type).item() == pytest.approx(separate.item(), rel=1e-12)
    no_gp = discriminator_loss(dis, fake_a, real, gan_type, gp_weight=0.0)
    assert no_gp.item() == pytest.approx(d_adversarial(dis(fake_a), dis(real), gan_type).item(), rel=1e-12)
    ranking = ranking_g_loss(dis, fake_a, fake_b, margin=1.0)
    assert ranking.item() == pytest.approx(margin_ranking(dis(fake_a), dis(fake_b), 1.0).item(), rel=1e-12)
    with pytest.raises(ValueError):  # one target per batch of fakes
        generator_loss(dis, [fake_a, fake_b], [1.0], gan_type)


# ---- ranking -----------------------------------------------------------------------------------

def test_ranking_sign_convention_higher_score_is_higher_quality():
    low, high = [const_maps(0.0, 0.0)], [const_maps(2.0, 2.0)]
    assert margin_ranking(low, high, margin=1.0).item() == 0.0
    assert margin_ranking(high, low, margin=1.0).item() == pytest.approx(3.0)  # 1 + 2
    # the hinge is per image: one satisfied pair (0) and one violated by 0.5 (0.5) average to 0.25
    assert margin_ranking([const_maps(0.0, 0.0)], [const_maps(2.0, 0.5)]).item() == pytest.approx(0.25)


def test_eq10_label_is_predicted_by_the_discriminator_without_gradient():
    dis = BrightnessDis()
    bright, dark = torch.full((1, 3, 8, 8), 1.0), torch.full((1, 3, 8, 8), -1.0)
    x_first = torch.cat([bright, dark]).requires_grad_(True)
    x_second = torch.cat([dark, bright])
    label = rank_label(dis, x_first, x_second)
    assert label.tolist() == [1.0, -1.0]
    assert not label.requires_grad
    assert rank_label(dis, bright, bright).tolist() == [1.0]  # ties count as "first is higher"
    lower, higher = order_pair(x_first, x_second, label)
    assert torch.equal(higher, torch.cat([bright, bright])) and torch.equal(lower, torch.cat([dark, dark]))


def test_ranking_d_loss_penalises_the_higher_image_and_detaches_inputs():
    dis = BrightnessDis(w=1.0)
    generator = nn.Conv2d(3, 3, 1)
    lower, higher = generator(torch.full((2, 3, 8, 8), -1.0)), torch.full((2, 3, 8, 8), 2.0)
    loss = ranking_d_loss(dis, lower, higher, margin=1.0, gp_weight=0.01)
    loss.backward()
    assert generator.weight.grad is None
    assert dis.w.grad is not None
    # scores: higher 2, lower = generator's output brightness; penalty on higher:
    # scale 0: grad of sum(mean_c x) wrt x = 1/3 per element -> 3*64/9 per image; scale 1 (2x2 pool): 1/12 -> 3*64/144
    gp = (3 * 64 / 9 + 3 * 64 / 144) / 2
    no_gp = ranking_d_loss(dis, lower, higher, margin=1.0, gp_weight=0.0)
    assert (loss - no_gp).item() == pytest.approx(0.01 * gp, rel=1e-5)


def test_ranking_g_loss_reaches_the_generated_images():
    dis = BrightnessDis()
    x_ab = torch.zeros(2, 3, 8, 8, requires_grad=True)
    x_ba = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss = ranking_g_loss(dis, x_ab, x_ba, margin=1.0)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert x_ab.grad.sum() > 0 > x_ba.grad.sum()  # push the lower one down, the higher one up


# ---- reconstruction ----------------------------------------------------------------------------

def test_pixel_losses_by_name():
    pred, target = torch.zeros(1, 1, 1, 2), torch.tensor([[[[0.5, 2.0]]]])
    assert pixel_loss(pred, target, "l1").item() == pytest.approx(1.25)
    assert pixel_loss(pred, target, "l2").item() == pytest.approx((0.25 + 4) / 2)
    assert pixel_loss(pred, target, "smooth_l1").item() == pytest.approx((0.125 + 1.5) / 2)
    with pytest.raises(ValueError, match="smooth_l1"):
        pixel_loss(pred, target, "ssim")


def test_content_invariance_reaches_both_content_maps():
    c_a = torch.zeros(1, 2, 2, 2, requires_grad=True)
    c_b = torch.ones(1, 2, 2, 2, requires_grad=True)
    loss = content_invariance_loss(c_a, c_b)
    assert loss.item() == 1.0
    loss.backward()
    assert c_a.grad is not None and c_b.grad is not None


# ---- identity ----------------------------------------------------------------------------------

def test_identification_loss_is_plain_cross_entropy():
    assert identification_loss(torch.zeros(2, 5), torch.tensor([0, 3])).item() == pytest.approx(math.log(5))


def test_kl_detach_gives_no_gradient_to_the_target():
    target = torch.randn(4, 6, requires_grad=True)
    logits = torch.randn(4, 6, requires_grad=True)
    loss = kl_detach(target, logits)
    assert loss.item() > 0
    loss.backward()
    assert target.grad is None and logits.grad is not None
    assert kl_detach(logits, logits.detach().clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_identity_preserving_loss_reaches_only_the_generated_images(osnet_msmt17_weights, images):
    eid = IdentityEncoder("osnet_x0_25", read_weights(osnet_msmt17_weights))
    source = images.clone().requires_grad_(True)
    generated = (images + 0.5 * torch.randn_like(images)).requires_grad_(True)
    loss = identity_preserving_loss(eid, generated, source, "l1")
    assert loss.item() > 0
    loss.backward()
    assert generated.grad is not None and generated.grad.abs().sum() > 0
    assert source.grad is None
    assert all(p.grad is None for p in eid.parameters())
    assert identity_preserving_loss(eid, images, images, "cosine").item() == pytest.approx(0.0, abs=1e-5)
