"""Multi-scale trunks for the content encoder, cut out of torchreid backbones (docs/method.md 3.2).

Every trunk returns four feature maps at strides 2, 4, 8 and 16 of the input:

- ResNet family: ReLU(BN(conv1)), layer1 (after the max-pool), layer2, layer3; layer4 (and the
  pooling/fc/classifier) are dropped, as in the official content encoder.
  resnet50 channels: 64, 256, 512, 1024.
- OSNet family: conv1, the conv2 blocks, the conv3 blocks, conv4. OSNet ends conv2 and conv3
  with a 1x1-conv + 2x2 avg-pool transition; each level is tapped *before* its stage's transition
  (which then starts the next level), so the strides are 2/4/8/16 like ResNet's and the fused
  content map lands at 1/4 of the input. conv5 and the head are dropped.
  osnet_x0_25 channels: 16, 64, 96, 128.

The submodules keep torchreid's attribute names, so torchreid-format state dicts load directly.
"""
import torch
import torch.nn as nn
import torchreid.reid.models as torchreid_models

from direid_plugin.weights import load_partial

RESNET_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                "resnext101_32x8d", "resnet50_fc512")
OSNET_NAMES = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0")
LEVEL_STRIDES = (2, 4, 8, 16)


def build_torchreid_model(name, pretrained=False):
    """A stock torchreid model by name; ``pretrained`` goes through torchreid's own ImageNet path."""
    return torchreid_models.build_model(name, num_classes=1, pretrained=pretrained, use_gpu=False)


class MultiScaleTrunk(nn.Module):
    """Base class: ``forward(x)`` returns the four level maps; ``channels`` lists their widths."""

    strides = LEVEL_STRIDES

    def __init__(self, name):
        super().__init__()
        self.name = name

    def _probe_channels(self):
        """Channel counts from one tiny forward, which also checks the level strides."""
        was_training = self.training
        self.eval()
        size = 4 * LEVEL_STRIDES[-1]
        with torch.no_grad():
            levels = self(torch.zeros(1, 3, size, size))
        self.train(was_training)
        got = tuple(size // f.shape[-1] for f in levels)
        if got != LEVEL_STRIDES:
            raise RuntimeError(f"{self.name} trunk gives strides {got}, expected {LEVEL_STRIDES}")
        return tuple(f.shape[1] for f in levels)

    def load_weights(self, weights):
        """Load torchreid-format ``Weights`` (head keys such as layer4/conv5/fc/classifier are skipped)."""
        report = load_partial(self, weights)
        print(f'=> {self.name} trunk: loaded {len(report.loaded)} tensors from "{weights.source}" '
              f"({len(report.missing)} missing, {len(report.unexpected)} unused, "
              f"{len(report.mismatched)} shape-mismatched)")
        return report


class ResNetTrunk(MultiScaleTrunk):
    def __init__(self, name, model):
        super().__init__(name)
        self.conv1, self.bn1, self.relu, self.maxpool = model.conv1, model.bn1, model.relu, model.maxpool
        self.layer1, self.layer2, self.layer3 = model.layer1, model.layer2, model.layer3
        self.channels = self._probe_channels()

    def forward(self, x):
        x0 = self.relu(self.bn1(self.conv1(x)))
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return [x0, x1, x2, x3]


class OSNetTrunk(MultiScaleTrunk):
    def __init__(self, name, model):
        super().__init__(name)
        self.conv1, self.maxpool = model.conv1, model.maxpool
        self.conv2, self.conv3, self.conv4 = model.conv2, model.conv3, model.conv4
        self.channels = self._probe_channels()

    def forward(self, x):
        x0 = self.conv1(x)
        # conv2[-1] and conv3[-1] are the down-sampling transitions; they open the next level.
        x1 = self.conv2[:-1](self.maxpool(x0))
        x2 = self.conv3[:-1](self.conv2[-1](x1))
        x3 = self.conv4(self.conv3[-1](x2))
        return [x0, x1, x2, x3]


_TRUNKS = {**{n: ResNetTrunk for n in RESNET_NAMES}, **{n: OSNetTrunk for n in OSNET_NAMES}}
SUPPORTED_BACKBONES = tuple(_TRUNKS)


def build_trunk(name, pretrained=False, weights=None):
    """A four-level trunk from torchreid backbone ``name``, optionally loaded from ``weights`` (``Weights``)."""
    if name not in _TRUNKS:
        raise ValueError(f"unsupported backbone '{name}'; supported: {list(SUPPORTED_BACKBONES)}")
    trunk = _TRUNKS[name](name, build_torchreid_model(name, pretrained))
    if weights is not None:
        trunk.load_weights(weights)
    return trunk
