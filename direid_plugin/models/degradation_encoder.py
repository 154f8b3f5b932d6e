"""Degradation encoders E_d (real) and E'_d (self/synthetic) with a shared trunk (docs/method.md 3.3)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from direid_plugin.models.blocks import Conv2dBlock, weights_init

# (out_channels as a multiple of the width, stride) of the 3x3 convs; with the official width 64 the
# channels are 64, 64, 128, 256, 256, 256. The map is 1/32 of the input (8x4 for 256x128).
TRUNK_LAYERS = ((1, 2), (1, 1), (2, 2), (4, 2), (4, 2), (4, 2))


class DegradationEncoder(nn.Module):
    """Six 3x3 convs (ReLU, reflect padding, no norm), global average pooling, then one of two
    1x1 heads: ``real`` (E_d, for real images) or ``self`` (E'_d, for self-degraded images).

    The paper says E_d and E'_d do not share weights; the official code shares everything but the
    final projection, which we follow. Inputs need H, W >= 64 x 32 (reflection padding of the last
    conv needs a map of at least 2 x 2). ``width`` (official 64) scales every trunk convolution.
    """

    def __init__(self, code_dim=128, in_channels=3, width=64):
        super().__init__()
        layers, ch = [], in_channels
        for multiple, stride in TRUNK_LAYERS:
            layers.append(Conv2dBlock(ch, multiple * width, 3, stride, 1, activation="relu", pad_type="reflect"))
            ch = multiple * width
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({"real": nn.Conv2d(ch, code_dim, 1), "self": nn.Conv2d(ch, code_dim, 1)})
        self.code_dim = code_dim
        self.apply(weights_init("kaiming"))

    def forward(self, x, synthetic=False):
        """Degradation code (B, code_dim); ``synthetic=True`` selects the self-degradation head E'_d."""
        return self._project(self._pooled(x), synthetic)

    def codes_of(self, *images_and_heads):
        """Codes of several ``(images, synthetic)`` batches; the shared trunk runs once on all of them
        (it has no batch-dependent layer, and on a CPU much of its cost is per call)."""
        images = [x for x, _ in images_and_heads]
        pooled = self._pooled(torch.cat(images)).split([len(x) for x in images])
        return [self._project(p, synthetic) for p, (_, synthetic) in zip(pooled, images_and_heads)]

    def _pooled(self, x):
        return F.adaptive_avg_pool2d(self.trunk(x), 1)

    def _project(self, pooled, synthetic):
        return self.heads["self" if synthetic else "real"](pooled).flatten(1)
