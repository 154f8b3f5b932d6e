"""Adversarial losses over multi-scale discriminator outputs (docs/method.md 4.3, 4.4; paper Eq. 4, 7).

Every loss takes the list of patch maps a MultiScaleDiscriminator returns and averages the
per-scale values over scales. Two forms:
- ``lsgan`` (official code): D: mean(D(fake)^2) + mean((D(real) - 1)^2);
  G: 2 * mean((D(fake) - t)^2). The factor 2 is the official code's; it only rescales w_real.
- ``nsgan`` (paper, log-likelihood): D: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)));
  G: the non-saturating binary cross-entropy of D(fake) against the target t.
A target t other than 1 is used by the official binary D_d on real LR/HR pairs (t = 0 for LR).
"""
import torch
import torch.nn.functional as F

from direid_plugin.profiling import section

GAN_TYPES = ("lsgan", "nsgan")


def _check_type(gan_type):
    if gan_type not in GAN_TYPES:
        raise ValueError(f"unknown gan_type '{gan_type}'; choose one of {list(GAN_TYPES)}")


def _mean_over_scales(values):
    return torch.stack(values).mean()


def d_adversarial(fake_outputs, real_outputs, gan_type="lsgan"):
    """Discriminator loss from its outputs on fake and real images (no penalty)."""
    _check_type(gan_type)
    values = []
    for fake, real in zip(fake_outputs, real_outputs, strict=True):
        if gan_type == "lsgan":
            values.append(fake.pow(2).mean() + (real - 1).pow(2).mean())
        else:
            values.append(F.softplus(fake).mean() + F.softplus(-real).mean())
    return _mean_over_scales(values)


def g_adversarial(fake_outputs, target=1.0, gan_type="lsgan"):
    """Generator loss pushing the discriminator's outputs on fakes towards ``target``."""
    _check_type(gan_type)
    values = []
    for fake in fake_outputs:
        if gan_type == "lsgan":
            values.append(2 * (fake - target).pow(2).mean())
        else:
            values.append(F.binary_cross_entropy_with_logits(fake, torch.full_like(fake, float(target))))
    return _mean_over_scales(values)


def gradient_penalty(outputs, inputs):
    """R1-style penalty, averaged over scales: mean over the batch of ||d sum(D_s(x)) / dx||^2.

    ``inputs`` must require grad and ``outputs`` must come from them; the graph is kept
    (create_graph) so the penalty trains the discriminator.
    """
    values = []
    for out in outputs:
        (grad,) = torch.autograd.grad(out.sum(), inputs, create_graph=True)
        values.append(grad.pow(2).flatten(1).sum(1).mean())
    return _mean_over_scales(values)


def outputs_of(dis, *images):
    """D's outputs (a list over scales) for each image batch, from one batched call. Exact because D
    has no batch-dependent layer; on a CPU much of D's cost is per call."""
    outputs = dis(torch.cat(images))
    sizes = [len(x) for x in images]
    return [list(parts) for parts in zip(*(out.split(sizes) for out in outputs))]


def penalised(dis, other, anchor, gp_weight, loss_of_outputs):
    """``loss_of_outputs(dis(other), dis(anchor))`` + ``gp_weight`` x gradient penalty at ``anchor``.

    Both images are detached first (a D step trains only D). Without a penalty they go through D
    in one batched call (``outputs_of``); with one, ``anchor`` needs its own graph for the penalty.
    """
    other, anchor = other.detach(), anchor.detach()
    if gp_weight > 0:
        anchor.requires_grad_(True)
        anchor_outputs = dis(anchor)
        loss = loss_of_outputs(dis(other), anchor_outputs)
        with section("gradient penalty"):
            return loss + gp_weight * gradient_penalty(anchor_outputs, anchor)
    return loss_of_outputs(*outputs_of(dis, other, anchor))


def discriminator_loss(dis, fake, real, gan_type="lsgan", gp_weight=0.01):
    """D-step loss on detached images: adversarial term + ``gp_weight`` x penalty on the reals."""
    return penalised(dis, fake, real, gp_weight, lambda fake_outputs, real_outputs: d_adversarial(
        fake_outputs, real_outputs, gan_type))


def generator_loss(dis, fakes, targets, gan_type="lsgan"):
    """G-step loss, summed over the ``fakes`` batches, each pushed towards its target in ``targets``
    (one batched D call). Gradients reach the generator through the fakes; the caller steps only G."""
    return sum(g_adversarial(outputs, target, gan_type) for outputs, target in zip(outputs_of(dis, *fakes), targets,
                                                                                   strict=True))
