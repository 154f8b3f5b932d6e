"""Multi-scale PatchGAN discriminator, used for D_r (reality) and D_d (degradation), docs/method.md 3.5."""
import torch
import torch.nn as nn

from direid_plugin.models.blocks import Conv2dBlock, ResBlock, weights_init


def patch_scores(outputs):
    """Global average of each scale's patch map: (B, n_scales), one scalar per image and scale."""
    return torch.stack([out.mean(dim=(1, 2, 3)) for out in outputs], dim=1)


def _scale_network(in_channels, width):
    """One scale: a patch map at 1/4 of its input resolution."""
    conv = dict(activation="lrelu", pad_type="reflect", bias=False)
    return nn.Sequential(
        Conv2dBlock(in_channels, width, 1, activation="lrelu"),
        Conv2dBlock(width, width, 3, 1, 1, **conv),
        Conv2dBlock(width, width, 3, 2, 1, **conv),
        Conv2dBlock(width, width, 3, 1, 1, **conv),
        Conv2dBlock(width, 2 * width, 3, 2, 1, **conv),
        *[ResBlock(2 * width, norm="none", activation="lrelu", pad_type="reflect") for _ in range(4)],
        nn.Conv2d(2 * width, 1, 1),
    )


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` PatchGAN networks; the image is halved between scales with
    AvgPool2d(3, 2, 1, count_include_pad=False). D_r uses 3 scales; D_d 1 (resolution-only
    degradation in the official code) or 3. ``width`` is the first convolutions' channel count
    (32 in the official code; the residual blocks run at twice that). Gaussian N(0, 0.02) init.

    ``forward(x)`` returns the list of patch maps (finest first); ``score(x)`` the per-image
    scalar used for degradation ranking (higher = higher quality, see losses/degradation_ranking.py).
    """

    def __init__(self, n_scales=3, in_channels=3, width=32):
        super().__init__()
        if n_scales < 1:
            raise ValueError(f"a discriminator needs at least one scale, got n_scales={n_scales}")
        self.scales = nn.ModuleList(_scale_network(in_channels, width) for _ in range(n_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.apply(weights_init("gaussian"))

    @property
    def n_scales(self):
        return len(self.scales)

    def forward(self, x):
        outputs = []
        for i, net in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs

    def score(self, x):
        """(B,) mean over scales of each patch map's global average."""
        return patch_scores(self(x)).mean(dim=1)
