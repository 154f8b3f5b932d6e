"""Degradation space (the paper's Fig. 7): E_d codes of real images degraded by a known amount,
projected to 2-D by PCA and coloured by that amount.

If E_d encodes the degradation, the colours form a gradient across the cloud; the Spearman
correlation between the first principal component and the amount puts a number on it. E_d codes
also carry what else the decoder needs from them (colour and light: the content map is
instance-normalised), which can dominate a cloud of different images; with several degraded
copies of each image (``per_image``), each image's mean code is subtracted first, so the cloud
shows how a code moves with the degradation alone.
"""
import os

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from direid_plugin.data.image_io import read_image

FIGSIZE = (6.4, 4.8)  # inches
DPI = 100  # so the PNG is 640 x 480 pixels


@torch.no_grad()
def degradation_codes(ddgan, paths, degradation, transform, device, seed=0, synthetic=False, batch_size=64):
    """Degrade each image with ``degradation`` (a one-kind ``degradations.Compose``; parameters drawn
    from ``seed``), encode it with E_d (E'_d when ``synthetic``): (codes (N, code_dim), amounts (N,)),
    the amount being the kind's first parameter (e.g. the down-sampling factor)."""
    if len(degradation.degradations) != 1:
        raise ValueError(f"the degradation space needs one degradation kind, got {degradation.names}")
    kind = degradation.degradations[0]
    rng = np.random.default_rng(seed)
    codes, amounts = [], []
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start:start + batch_size]:
            image, params = degradation(read_image(path), rng)
            amounts.append(params[kind.name][kind.param_names[0]])
            batch.append(transform(image))
        codes.append(ddgan.degradation_encoder(torch.stack(batch).to(device), synthetic))
    return torch.cat(codes).cpu(), np.asarray(amounts)


def space_codes(ddgan, paths, degradation, transform, device, seed=0, synthetic=False, per_image=1):
    """``degradation_codes`` of ``per_image`` degraded copies of each image of ``paths`` (each copy with
    its own draw); with more than one, each image's mean code is subtracted (``centre_per_image``)."""
    codes, amounts = degradation_codes(ddgan, list(paths) * per_image, degradation, transform, device, seed, synthetic)
    return (centre_per_image(codes, len(paths)) if per_image > 1 else codes), amounts


def centre_per_image(codes, n_images):
    """Codes of ``n_images`` images repeated in turn (image i at rows i, i + n, i + 2n, ...), minus
    each image's mean code."""
    grouped = codes.reshape(-1, n_images, codes.shape[1])
    return (grouped - grouped.mean(dim=0, keepdim=True)).reshape(codes.shape)


def pca_2d(features):
    """(N, 2) coordinates on the two leading principal axes, and their explained-variance ratios (2,)."""
    centered = features.double() - features.double().mean(dim=0, keepdim=True)
    _, singular, axes = torch.linalg.svd(centered, full_matrices=False)
    variance = singular ** 2
    return (centered @ axes[:2].T).float(), (variance[:2] / variance.sum()).float()


def pc1_spearman(coords, amounts):
    """Spearman correlation between the first PCA coordinate and the degradation amounts."""
    return float(spearmanr(coords[:, 0].numpy(), amounts).statistic)


def save_space_plot(path, codes, amounts, amount_name, title):
    """PCA scatter of ``codes`` coloured by ``amounts``, with a colour bar; returns (path, summary)."""
    coords, explained = pca_2d(codes)
    rho = pc1_spearman(coords, amounts)
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")  # the size stays FIGSIZE * DPI
    axes = figure.add_subplot()
    points = axes.scatter(coords[:, 0].numpy(), coords[:, 1].numpy(), c=amounts, cmap="viridis", s=16)
    figure.colorbar(points, ax=axes, label=amount_name)
    axes.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance; Spearman vs {amount_name}: {rho:+.2f})")
    axes.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    axes.set_title(title, fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    return path, {"pc1_spearman": rho, "explained_variance": explained.tolist()}
