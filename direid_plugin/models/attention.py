"""Channel attention on f_sen for DFEN (paper Eq. 13; official self-gating, docs/method.md 3.8).

``guided`` (paper): the weights come from the frozen stage-1 degradation discriminator D_d. Its
input signal is, per D_d scale, the patch map's mean (D_d's quality score, higher = better) and
standard deviation (how unevenly the degradation is spread over the image): 2 x n_scales numbers.
``self`` (official code): the weights come from f_sen itself, with the gradient stopped.
Both map their signal to a 128-d latent and then, through a bias-free linear layer and a sigmoid,
to one weight in (0, 1) per f_sen channel, as the official ``128_bn_sigmoid`` module does.
"""
import torch
import torch.nn as nn

from direid_plugin.models.blocks import MLP, LinearBlock

ATTENTIONS = ("guided", "self", "none")
SELF_HIDDEN_DIM = 256  # official identity2latent: f_sen -> 256 -> 256 -> latent


def degradation_statistics(discriminator, x):
    """(B, 2 * n_scales): each scale's patch-map mean, then each scale's standard deviation.

    D_d is frozen: it runs under no_grad, so no loss can change it (even when torchreid's
    ``open_all_layers`` has set ``requires_grad`` on every parameter).
    """
    with torch.no_grad():
        maps = [m.flatten(1).float() for m in discriminator(x)]
    return torch.cat([torch.stack([m.mean(1) for m in maps], 1), torch.stack([m.std(1) for m in maps], 1)], 1)


class ChannelAttention(nn.Module):
    """weights = sigmoid(W * encoder(signal)), W bias-free: (B, out_dim) in (0, 1)."""

    def __init__(self, encoder, latent_dim, out_dim):
        super().__init__()
        self.encoder = encoder
        self.to_weights = nn.Linear(latent_dim, out_dim, bias=False)

    def forward(self, signal):
        return torch.sigmoid(self.to_weights(self.encoder(signal)))


def build_attention(kind, sen_dim, latent_dim=128, dd_scales=1):
    """The attention module for ``kind`` (None for 'none')."""
    if kind not in ATTENTIONS:
        raise ValueError(f"dfen.attention: unknown attention '{kind}'; choose one of {list(ATTENTIONS)}")
    if kind == "guided":  # BN standardises D_d's statistics, whose scale is arbitrary
        return ChannelAttention(LinearBlock(2 * dd_scales, latent_dim, "bn", "relu"), latent_dim, sen_dim)
    if kind == "self":
        return ChannelAttention(MLP(sen_dim, latent_dim, SELF_HIDDEN_DIM, 3, "bn", "relu"), latent_dim, sen_dim)
    return None
