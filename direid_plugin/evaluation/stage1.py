"""Has stage 1 learned? Measurements of a DDGAN on held-out real images (a dataset's test split).

- ``reconstruction_errors``: on self-degraded pairs (x_a = an HR image, x_b = its degraded copy,
  as in the self iterations of training), the mean L1 of the reconstructions G(c_a, d_a) -> x_a,
  G(c_b, d'_b) -> x_b and of the cross reconstructions G(c_a, d'_b) -> x_b, G(c_b, d_a) -> x_a,
  in the normalised image space the training losses use.
- ``degradation_order``: the share of identities whose HR images D_d scores above their real LR
  images (higher D_d score = judged less degraded).
- ``degradation_space_spearman``: E_d codes of images degraded by known factors, PCA, and the
  Spearman correlation of the first component with the factor (visualize/space.py), across images
  or, with several degraded copies per image, within images.
"""
import numpy as np
import torch

from direid_plugin.data.image_io import read_image
from direid_plugin.visualize.space import pc1_spearman, pca_2d, space_codes


def self_degraded_pairs(paths, degradation, transform, seed=0):
    """(x_a, x_b): the images of ``paths`` and their copies degraded by ``degradation`` (a
    ``degradations.Compose``; parameters drawn from ``seed``), both through ``transform``."""
    rng = np.random.default_rng(seed)
    clean, degraded = [], []
    for path in paths:
        image = read_image(path)
        clean.append(transform(image))
        degraded.append(transform(degradation(image, rng)[0]))
    return torch.stack(clean), torch.stack(degraded)


@torch.no_grad()
def reconstruction_errors(ddgan, x_a, x_b, batch_size=64):
    """{"rec": mean L1 of x_aa, x_bb; "cross_rec": mean L1 of x_ab -> x_b, x_ba -> x_a} over all pairs.
    x_b's code comes from the self-degradation head E'_d, as in training."""
    device = next(ddgan.parameters()).device
    sums = {"rec": 0.0, "cross_rec": 0.0}
    for start in range(0, len(x_a), batch_size):
        a, b = x_a[start:start + batch_size].to(device), x_b[start:start + batch_size].to(device)
        x_aa, x_bb, x_ab, x_ba = ddgan.swap(a, b, synthetic_b=True)
        l1 = lambda x, y: (x - y).abs().mean(dim=(1, 2, 3)).sum().item()
        sums["rec"] += (l1(x_aa, a) + l1(x_bb, b)) / 2
        sums["cross_rec"] += (l1(x_ab, b) + l1(x_ba, a)) / 2
    return {key: value / len(x_a) for key, value in sums.items()}


@torch.no_grad()
def degradation_order(ddgan, hr_items, lr_items, transform, batch_size=64):
    """Share of identities (present in both lists) whose mean D_d score over their HR images is
    above the mean over their LR images; items are torchreid ``(path, pid, camid, ...)``."""
    device = next(ddgan.parameters()).device
    scores = {}
    for name, items in (("hr", hr_items), ("lr", lr_items)):
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            x = torch.stack([transform(read_image(item[0])) for item in batch]).to(device)
            for item, score in zip(batch, ddgan.degradation_discriminator.score(x).tolist()):
                scores.setdefault(item[1], {"hr": [], "lr": []})[name].append(score)
    pairs = [s for s in scores.values() if s["hr"] and s["lr"]]
    if not pairs:
        raise ValueError("degradation_order: no identity has both HR and LR images")
    return float(np.mean([np.mean(s["hr"]) > np.mean(s["lr"]) for s in pairs])), len(pairs)


def degradation_space_spearman(ddgan, paths, degradation, transform, seed=0, synthetic=False, per_image=1):
    """Spearman correlation between PC 1 of the E_d codes of ``paths`` degraded by ``degradation``
    (one kind; ``per_image`` copies each, centred per image when more than one) and the kind's
    parameter: what ``tools/visualize.py space`` prints for the same inputs."""
    device = next(ddgan.parameters()).device
    codes, amounts = space_codes(ddgan, paths, degradation, transform, device, seed, synthetic, per_image)
    return pc1_spearman(pca_2d(codes)[0], amounts)
