"""Degradation-sensitive encoder E_id of DFEN (stage 2): a trainable torchreid Re-ID backbone.

Paper (CVPR 2020, Sec. 3.2): a separate pre-trained Re-ID network gives f_sen. Official code
(docs/method.md 3.6, 5.1): E_id keeps only its last stage, fed with E_c's last trunk level, so both
branches share one trunk. ``shared_channels`` selects the official form.
"""
import torch.nn as nn

from direid_plugin.models.backbones import OSNET_NAMES, RESNET_NAMES, build_torchreid_model
from direid_plugin.weights import load_partial

# Per family: the featuremaps() stages before the last one, and the last one. E_c's trunk ends at
# the same point (ResNet layer3, OSNet conv4; models/backbones.py), so the last stage continues it.
_STAGES = {
    "resnet": (("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"), "layer4"),
    "osnet": (("conv1", "maxpool", "conv2", "conv3", "conv4"), "conv5"),
}


def backbone_family(name):
    if name in RESNET_NAMES:
        return "resnet"
    if name in OSNET_NAMES:
        return "osnet"
    raise ValueError(f"dfen.sen_backbone: unsupported backbone '{name}'; supported: "
                     f"{list(RESNET_NAMES + OSNET_NAMES)}")


def _in_channels(stage):
    return next(m for m in stage.modules() if isinstance(m, nn.Conv2d)).in_channels


class SensitiveEncoder(nn.Module):
    """f_sen = the torchreid model's own global pooling (+ its fc layer, if it has one) over its
    feature maps. Its classifier is dropped: DFEN's heads classify f_sen.

    ``shared_channels``: the channel count of E_c's last trunk level. When given, only the last
    stage (ResNet layer4, OSNet conv5) is kept and ``forward`` takes that level instead of the
    image; a backbone whose last stage expects other channels is an error.
    """

    def __init__(self, name, pretrained=False, weights=None, shared_channels=None):
        super().__init__()
        early, last = _STAGES[backbone_family(name)]
        model = build_torchreid_model(name, pretrained)
        if weights is not None:
            report = load_partial(model, weights)
            missing = [k for k in report.missing if not k.startswith("classifier.")]
            print(f'=> E_id {name}: loaded {len(report.loaded)} tensors from "{weights.source}" (classifier dropped; '
                  f"{len(missing)} other tensors left at init{f', e.g. {missing[:3]}' if missing else ''})")
        model.classifier = None
        self.last_stage = None
        if shared_channels is not None:
            expected = _in_channels(getattr(model, last))
            if expected != shared_channels:
                raise ValueError(
                    f"dfen.shared_trunk: {name}.{last} expects {expected} input channels but E_c's trunk "
                    f"(ddgan.backbone) ends with {shared_channels}; use the same backbone for both, "
                    "or dfen.shared_trunk False")
            for stage in early:
                setattr(model, stage, None)
            self.last_stage = last
        self.model = model
        self.feature_dim = model.feature_dim

    def forward(self, x):
        """x: the image, or E_c's last trunk level when the trunk is shared. Returns (B, feature_dim)."""
        maps = getattr(self.model, self.last_stage)(x) if self.last_stage else self.model.featuremaps(x)
        v = self.model.global_avgpool(maps).flatten(1)
        return v if self.model.fc is None else self.model.fc(v)
