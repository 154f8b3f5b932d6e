"""Image grids of normalised tensors: inputs, reconstructions and degradation swaps."""
import os

import torch
from torchvision.utils import save_image

from direid_plugin.data.pairs import IMAGENET_MEAN, IMAGENET_STD


def denormalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Undo the ImageNet normalisation (generator outputs live in normalised space) and clamp to [0, 1]."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() * std + mean).clamp(0, 1)


def save_grid(path, columns, max_rows=8, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Save a grid with one row per sample and one column per tensor in ``columns`` (each (B, 3, H, W))."""
    columns = [c[:max_rows].detach().cpu() for c in columns]
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # sample-major: a row per sample
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_image(denormalize(rows, mean, std), path, nrow=len(columns), padding=2, pad_value=1.0)
    return path
