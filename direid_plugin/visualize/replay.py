"""Memory-replay sheet: one image re-rendered with degradation codes drawn from a bank of real codes.

The bank is built as stage 2's memory replay builds it (engines/memory_replay.py ``code_bank``:
real-head E_d codes of real images, mirror-averaged); the official visualize.py decodes 8 codes.
"""
import numpy as np
import torch

from direid_plugin.data.pairs import IMAGENET_MEAN, IMAGENET_STD
from direid_plugin.engines.memory_replay import code_bank
from direid_plugin.visualize.dataset_images import load_batch
from direid_plugin.visualize.grids import Tile, save_sheet

LAYOUT = ("top row: the real images whose codes were drawn from the bank; bottom row: the input at the "
          "left, then its content decoded with each drawn code")


@torch.no_grad()
def save_replay_sheet(ddgan, image, label, bank_items, bank_labels, transform, path, num_codes=8, seed=0,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Decode ``image`` (3, H, W) with ``num_codes`` codes drawn without replacement from the bank of
    ``bank_items`` (torchreid data items, captioned ``bank_labels``); an eval-mode DDGAN. See ``LAYOUT``."""
    device = image.device
    bank = code_bank(ddgan.degradation_encoder, bank_items, transform, progress=False)
    drawn = np.random.default_rng(seed).choice(len(bank), size=min(num_codes, len(bank)), replace=False)
    sources = load_batch([bank_items[i][0] for i in drawn], transform, device)
    content = ddgan.content_encoder.content(image[None])
    rendered = ddgan.generate(content.expand(len(drawn), -1, -1, -1), bank[torch.as_tensor(drawn, device=device)])
    rows = [[Tile()] + [Tile(x, bank_labels[i]) for x, i in zip(sources, drawn)],
            [Tile(image, label)] + [Tile(x) for x in rendered]]
    return save_sheet(path, rows, *image.shape[-2:], mean, std)
