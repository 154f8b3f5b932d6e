"""Content encoder E_c: multi-scale trunk + ContentHead + ClassBlock classifier (docs/method.md 3.2)."""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from direid_plugin.profiling import section
from direid_plugin.models.backbones import build_trunk
from direid_plugin.models.blocks import ASPP, ClassBlock, Conv2dBlock, LiteResBlock, UpsampleBlock, weights_init

CONTENT_STRIDE = 4  # the content map is at 1/4 of the input resolution


class ContentHead(nn.Module):
    """Turns the trunk's levels into a content map and the degradation-invariant identity feature.

    Level 0 goes through ASPP and a 2x2 max-pool (stride 2 -> 4). Each used level has one shared
    invariance LiteResBlock, then:
    - content branch: upsample to 1/4 (x1, x2, x4 for strides 4, 8, 16), conv3x3 -> ``content_dim / 2``
      (BN, LReLU; 64 in the official code, whose content_dim is 128), concatenate, 1x1 conv ->
      ``content_dim`` (IN, LReLU);
    - identity branch: two LiteResBlocks, global average pool, concatenate, 1x1 conv ->
      ``feat_inv_dim`` (BN, LReLU), flattened to f_inv.

    ``multi_scale=False`` (Table-3 ablation "w/o multi-scale") uses only the last level for both
    branches; level 0's ASPP is then not built.
    """

    def __init__(self, level_channels, level_strides, feat_inv_dim=2048, content_dim=128, multi_scale=True):
        super().__init__()
        used = range(len(level_channels)) if multi_scale else [len(level_channels) - 1]
        self.used_levels = list(used)
        self.aspp = ASPP(level_channels[0], content_dim) if 0 in self.used_levels else None
        widths = [content_dim if i == 0 else level_channels[i] for i in self.used_levels]
        strides = [CONTENT_STRIDE if i == 0 else level_strides[i] for i in self.used_levels]

        self.invariance = nn.ModuleList(LiteResBlock(d) for d in widths)
        branch_width = content_dim // 2
        self.content_branch = nn.ModuleList(
            UpsampleBlock(Conv2dBlock(d, branch_width, 3, 1, 1, norm="bn", activation="lrelu"), s // CONTENT_STRIDE)
            for d, s in zip(widths, strides)
        )
        self.content_fuse = Conv2dBlock(branch_width * len(widths), content_dim, 1, norm="in", activation="lrelu")
        self.identity_branch = nn.ModuleList(nn.Sequential(LiteResBlock(d), LiteResBlock(d)) for d in widths)
        self.identity_fuse = Conv2dBlock(sum(widths), feat_inv_dim, 1, norm="bn", activation="lrelu")
        self.apply(weights_init("kaiming"))

    def _invariant_levels(self, levels):
        picked = []
        for i in self.used_levels:
            x = levels[i]
            if i == 0:
                x = F.max_pool2d(self.aspp(x), 2)
            picked.append(x)
        return [block(x) for block, x in zip(self.invariance, picked)]

    def _content(self, inv):
        return self.content_fuse(torch.cat([branch(x) for branch, x in zip(self.content_branch, inv)], dim=1))

    def _identity(self, inv):
        pooled = [F.adaptive_avg_pool2d(branch(x), 1) for branch, x in zip(self.identity_branch, inv)]
        return self.identity_fuse(torch.cat(pooled, dim=1)).flatten(1)

    def forward(self, levels):
        """Returns (f_inv (B, feat_inv_dim), content (B, content_dim, H/4, W/4))."""
        inv = self._invariant_levels(levels)
        return self._identity(inv), self._content(inv)

    def content(self, levels):
        return self._content(self._invariant_levels(levels))

    def identity(self, levels):
        return self._identity(self._invariant_levels(levels))


class ContentEncoder(nn.Module):
    """E_c = trunk (torchreid backbone, 4 levels) + ContentHead + ClassBlock(feat_inv_dim, num_classes).

    ``freeze_trunk``: run the trunk under ``torch.no_grad`` (stage 1 of the official code), so it
    gets no gradients. Note the official code leaves the frozen trunk in train mode, so its
    BatchNorm layers still use batch statistics and their running mean/var keep drifting during
    stage 1 (docs/method.md 4.5). ``trunk_bn_eval=True`` keeps the trunk in eval mode whatever the
    parent's mode, which stops that drift. Both flags may be changed after construction.

    Inputs should have H and W divisible by 16 (the trunk stride) so that the content map is
    exactly H/4 x W/4 and the decoder reproduces the input size.
    """

    def __init__(self, num_classes, backbone="osnet_x0_25", pretrained=False, backbone_weights=None,
                 feat_inv_dim=2048, content_dim=128, multi_scale=True, freeze_trunk=True, trunk_bn_eval=False):
        super().__init__()
        self.trunk = build_trunk(backbone, pretrained, backbone_weights)
        self.head = ContentHead(self.trunk.channels, self.trunk.strides, feat_inv_dim, content_dim, multi_scale)
        self.classifier = ClassBlock(feat_inv_dim, num_classes)
        self.freeze_trunk = freeze_trunk
        self.trunk_bn_eval = trunk_bn_eval
        self.feat_inv_dim = feat_inv_dim
        self.content_dim = content_dim
        self.train(self.training)

    def train(self, mode=True):
        super().train(mode)
        if self.trunk_bn_eval:
            self.trunk.eval()
        return self

    def levels(self, x):
        grad_context = torch.no_grad() if self.freeze_trunk else contextlib.nullcontext()
        with grad_context, section("E_c trunk"):
            return self.trunk(x)

    def levels_of(self, *images):
        """The trunk levels of each image batch. A trunk in eval mode (``trunk_bn_eval``) maps each image
        independently of its batch, so the batches go through in one call, which on a CPU costs
        little more than one of them; in train mode its BatchNorm statistics are per call."""
        if self.trunk.training:
            return [self.levels(x) for x in images]
        sizes = [len(x) for x in images]
        levels = self.levels(torch.cat(images))
        return [list(parts) for parts in zip(*(level.split(sizes) for level in levels))]

    def forward(self, x):
        """Returns (f_inv, content) from one trunk pass."""
        return self.head(self.levels(x))

    def content(self, x):
        return self.head.content(self.levels(x))

    def identity(self, x):
        return self.head.identity(self.levels(x))

    def head_parameters(self):
        """Everything but the trunk: the head and the classifier."""
        return list(self.head.parameters()) + list(self.classifier.parameters())

    def trainable_parameters(self):
        """The parameters an optimiser should hold: the trunk only when it is not frozen."""
        trunk = [] if self.freeze_trunk else list(self.trunk.parameters())
        return trunk + self.head_parameters()
