"""Image grids of normalised tensors (inputs, reconstructions, degradation swaps) and annotated sheets."""
import os
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw, ImageFont
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


# Sheets: rows of framed tiles with a caption strip under each, drawn with PIL so they can be annotated.
PAD = 4  # frame width around every tile, in pixels
WHITE, GREEN, RED, BLUE = (255, 255, 255), (0, 160, 0), (220, 0, 0), (40, 90, 220)


@dataclass
class Tile:
    """One framed image of a sheet: ``image`` (3, H, W) normalised (None leaves it blank), the
    ``caption`` under it and the ``frame`` colour."""

    image: torch.Tensor = None
    caption: str = ""
    frame: tuple = WHITE


def caption_font_size(width):
    return max(10, min(16, width // 6))


def caption_height(width):
    return caption_font_size(width) + 4


def sheet_size(num_rows, num_cols, height, width):
    """(width, height) in pixels of a sheet of ``num_rows`` x ``num_cols`` tiles of H x W images."""
    return num_cols * (width + 2 * PAD), num_rows * (height + 2 * PAD + caption_height(width))


def save_sheet(path, rows, height, width, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Save ``rows`` (lists of ``Tile``, images H x W) as a PNG; short rows leave the right end blank."""
    num_cols = max(len(row) for row in rows)
    sheet = Image.new("RGB", sheet_size(len(rows), num_cols, height, width), WHITE)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(caption_font_size(width))
    tile_w, tile_h = width + 2 * PAD, height + 2 * PAD + caption_height(width)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            left, top = c * tile_w, r * tile_h
            draw.rectangle([left, top, left + tile_w - 1, top + height + 2 * PAD - 1], fill=tile.frame)
            if tile.image is not None:
                pixels = denormalize(tile.image.detach().cpu()[None], mean, std)[0].mul(255).round().byte()
                sheet.paste(Image.fromarray(pixels.permute(1, 2, 0).numpy()), (left + PAD, top + PAD))
            if tile.caption:
                draw.text((left + tile_w / 2, top + height + 2 * PAD + caption_height(width) / 2), tile.caption,
                          fill=(0, 0, 0), font=font, anchor="mm")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return path
