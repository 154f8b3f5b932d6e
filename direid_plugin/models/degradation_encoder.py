"""Degradation encoders E_d (real) and E'_d (self/synthetic) with a shared trunk (METHOD_SPEC 3.3)."""
import torch.nn as nn
import torch.nn.functional as F

from direid_plugin.models.blocks import Conv2dBlock, weights_init

# (out_channels, stride) of the 3x3 convs; the map is 1/32 of the input (8x4 for 256x128).
TRUNK_LAYERS = ((64, 2), (64, 1), (128, 2), (256, 2), (256, 2), (256, 2))


class DegradationEncoder(nn.Module):
    """Six 3x3 convs (ReLU, reflect padding, no norm), global average pooling, then one of two
    1x1 heads: ``real`` (E_d, for real images) or ``self`` (E'_d, for self-degraded images).

    The paper says E_d and E'_d do not share weights; the official code shares everything but the
    final projection, which we follow. Inputs need H, W >= 64 x 32 (reflection padding of the last
    conv needs a map of at least 2 x 2).
    """

    def __init__(self, code_dim=128, in_channels=3):
        super().__init__()
        layers, ch = [], in_channels
        for out, stride in TRUNK_LAYERS:
            layers.append(Conv2dBlock(ch, out, 3, stride, 1, activation="relu", pad_type="reflect"))
            ch = out
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({"real": nn.Conv2d(ch, code_dim, 1), "self": nn.Conv2d(ch, code_dim, 1)})
        self.code_dim = code_dim
        self.apply(weights_init("kaiming"))

    def forward(self, x, synthetic=False):
        """Degradation code (B, code_dim); ``synthetic=True`` selects the self-degradation head E'_d."""
        pooled = F.adaptive_avg_pool2d(self.trunk(x), 1)
        return self.heads["self" if synthetic else "real"](pooled).flatten(1)
