"""Memory replay (IJCV 2022 extension; docs/method.md 5.2): re-degrade training images with a frozen
copy of the stage-1 E_c, E_d and G, so stage 2 keeps seeing the degradations stage 1 learned.

``bank`` (official default): E_d's real-head code of every training image (test transform, mean
of the image's and its mirror's code) is computed once; each batch is decoded with codes drawn
uniformly, with replacement, from the bank. ``shuffle``: the batch's own codes, permuted.
``resample``: no decoder; the batch is re-degraded by the self-degradation prior itself
(``degradation.*``, through the degradations' tensor paths, data/degradations.py) - the CPU-budget
stand-in: the decoder pass of ``bank`` costs several times the DFEN step at 256x128.
"""
import json

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torchreid.reid.utils import read_image
from tqdm import tqdm

from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.models.content_encoder import ContentEncoder
from direid_plugin.models.decoder import AdaINDecoder
from direid_plugin.models.degradation_encoder import DegradationEncoder
from direid_plugin.models.dfen import STAGE1_FIX
from direid_plugin.weights import load_parts

REPLAY_MODES = ("none", "bank", "shuffle", "resample")


def check_mode(mode, allowed=REPLAY_MODES):
    if mode not in allowed:
        raise ValueError(f"dfen.memory_replay: unknown mode '{mode}'; choose one of {list(allowed)}")
    return mode


class _Images(Dataset):
    """The images of torchreid data items ``(path, pid, camid, ...)`` under one transform."""

    def __init__(self, items, transform):
        self.paths = [item[0] for item in items]
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.transform(read_image(self.paths[index]))


@torch.no_grad()
def code_bank(degradation_encoder, items, transform, batch_size=64, workers=0, progress=True):
    """Real-head E_d codes of torchreid data ``items`` (mean over each image and its mirror):
    (N, code_dim), on the encoder's device."""
    device = next(degradation_encoder.parameters()).device
    loader = DataLoader(_Images(items, transform), batch_size=batch_size, shuffle=False, num_workers=workers)
    codes = []
    for x in tqdm(loader, desc="memory bank (E_d codes)", disable=not progress, leave=False):
        codes.append(flip_averaged(degradation_encoder, x.to(device), flip=True))
    return torch.cat(codes)


class MemoryReplay(nn.Module):
    """Frozen stage-1 E_c / E_d / G; ``augment(x)`` = G(E_c.content(x), replayed codes).

    Always in eval mode with no trainable parameters: nothing here changes during stage 2.
    """

    def __init__(self, mode, stage1, backbone="osnet_x0_25", feat_inv_dim=2048, content_dim=128, code_dim=128,
                 multi_scale=True, deg_encoder_dim=64, adain_mlp_dim=512, upsample_kernel=5):
        super().__init__()
        self.mode = check_mode(mode, ("bank", "shuffle"))
        self.content_encoder = ContentEncoder(1, backbone, feat_inv_dim=feat_inv_dim, content_dim=content_dim,
                                              multi_scale=multi_scale)
        self.content_encoder.classifier = None  # only the content map is used
        self.degradation_encoder = DegradationEncoder(code_dim, width=deg_encoder_dim)
        self.decoder = AdaINDecoder(content_dim, code_dim, adain_mlp_dim, upsample_kernel)
        parts = {"content_encoder.trunk": self.content_encoder.trunk, "content_encoder.head": self.content_encoder.head,
                 "degradation_encoder": self.degradation_encoder, "decoder": self.decoder}
        load_parts(stage1, parts, fix=STAGE1_FIX)
        self.requires_grad_(False)
        self.train(False)
        self.bank = None

    @classmethod
    def from_config(cls, cfg, stage1):
        """``stage1``: the ``Weights`` of the stage-1 checkpoint (``dfen.ddgan_checkpoint``)."""
        d = cfg.ddgan
        return cls(cfg.dfen.memory_replay, stage1, d.backbone, d.feat_inv_dim, d.content_dim,
                   d.code_dim, d.multi_scale, d.deg_encoder_dim, d.adain_mlp_dim, d.upsample_kernel)

    def train(self, mode=True):
        return super().train(False)

    def build_bank(self, items, transform, batch_size=64, workers=0, progress=True):
        """The bank of ``code_bank`` over ``items``, kept for ``augment``."""
        self.bank = code_bank(self.degradation_encoder, items, transform, batch_size, workers, progress)
        return self.bank

    @torch.no_grad()
    def augment(self, x):
        """Re-degraded copies of ``x`` (same content, replayed degradation); no gradient."""
        if self.mode == "bank":
            if self.bank is None:
                raise RuntimeError("memory replay 'bank' needs build_bank() before augment()")
            codes = self.bank[torch.randint(len(self.bank), (len(x),), device=self.bank.device)]
        else:
            codes = self.degradation_encoder(x)[torch.randperm(len(x), device=x.device)]
        return self.decoder(self.content_encoder.content(x), codes)


class ResampleReplay(nn.Module):
    """``augment(x)``: each image re-degraded by its own draw from the self-degradation prior
    (``degradations.Compose``, e.g. ``build_degradation(cfg.degradation)``), seeded by ``seed``."""

    def __init__(self, degradation, seed=0):
        super().__init__()
        degradation.check_tensor_path("dfen.memory_replay 'resample'")
        self.degradation = degradation
        self.rng = np.random.default_rng(seed)

    def rng_state(self):
        """The draw stream's position, as a string (weights-only-loadable, unlike its 128-bit ints)."""
        return json.dumps(self.rng.bit_generator.state)

    def set_rng_state(self, state):
        self.rng.bit_generator.state = json.loads(state)

    def augment(self, x):
        return self.degradation.apply_to_batch(x, self.rng)
