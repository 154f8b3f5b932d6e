"""Building blocks shared by the DDGAN modules (docs/method.md 3.1, 3.7).

Conventions follow the official implementation so that parameter counts match docs/method.md 3.9:
convolutions carry a bias unless stated, padding is a separate layer, ``lrelu`` is slope 0.2.
Activations are never in-place: the gradient penalty differentiates through them twice.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD_TYPES = ("zero", "reflect", "replicate")
CONV_NORMS = ("bn", "in", "ln", "none")
LINEAR_NORMS = ("bn", "ln", "none")
ACTIVATIONS = ("relu", "lrelu", "prelu", "selu", "tanh", "none")


def _choice(kind, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {kind} '{value}'; choose one of {list(allowed)}")


def make_activation(name):
    _choice("activation", name, ACTIVATIONS)
    return {
        "relu": lambda: nn.ReLU(),
        "lrelu": lambda: nn.LeakyReLU(0.2),
        "prelu": lambda: nn.PReLU(),
        "selu": lambda: nn.SELU(),
        "tanh": lambda: nn.Tanh(),
        "none": lambda: nn.Identity(),
    }[name]()


def make_pad(pad_type, padding):
    _choice("padding type", pad_type, PAD_TYPES)
    if padding == 0:
        return nn.Identity()
    return {"zero": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}[pad_type](padding)


class LayerNorm(nn.Module):
    """Per-sample normalisation over all of C x H x W (or C for vectors), then a per-channel affine.

    ``(x - mean) / (std + eps)`` with the unbiased std, gamma ~ U(0, 1), beta = 0 (docs/method.md 3.1).
    Statistics are always per sample: the official code switches to batch-global statistics for
    CUDA half tensors, which makes AMP training and fp32 inference disagree; we do not copy that.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        flat = x.flatten(1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        mean = flat.mean(1).view(shape)
        std = flat.std(1).view(shape)
        x = (x - mean) / (std + self.eps)
        affine = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.gamma.view(affine) + self.beta.view(affine)


class AdaptiveInstanceNorm2d(nn.Module):
    """Instance norm (biased variance, eps 1e-5) whose per-sample scale and shift come from outside.

    The scale is applied as given, with no ``1 + gamma`` offset (docs/method.md 3.4). Passing the
    parameters to ``forward`` (rather than assigning them as module state before the call, as the
    official code does) keeps the decoder stateless and safe to call re-entrantly.
    """

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x, weight, bias):
        """x: (B, C, H, W); weight, bias: (B, C)."""
        x = F.instance_norm(x, eps=self.eps)
        return x * weight[:, :, None, None] + bias[:, :, None, None]


def make_conv_norm(norm, channels):
    _choice("norm", norm, CONV_NORMS)
    return {
        "bn": lambda: nn.BatchNorm2d(channels),
        "in": lambda: nn.InstanceNorm2d(channels, affine=False),
        "ln": lambda: LayerNorm(channels),
        "none": lambda: nn.Identity(),
    }[norm]()


class Conv2dBlock(nn.Sequential):
    """pad -> Conv2d -> norm -> activation."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0, dilation=1, norm="none",
                 activation="relu", pad_type="zero", bias=True):
        super().__init__(
            make_pad(pad_type, padding),
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, dilation=dilation, bias=bias),
            make_conv_norm(norm, out_ch),
            make_activation(activation),
        )


class LinearBlock(nn.Sequential):
    """Linear (with bias) -> norm -> activation."""

    def __init__(self, in_dim, out_dim, norm="none", activation="relu"):
        _choice("norm", norm, LINEAR_NORMS)
        norm_layer = {"bn": nn.BatchNorm1d, "ln": LayerNorm, "none": lambda _: nn.Identity()}[norm](out_dim)
        super().__init__(nn.Linear(in_dim, out_dim), norm_layer, make_activation(activation))


class MLP(nn.Sequential):
    """Flatten -> LinearBlock(in->hidden) -> (n_blk - 2) x LinearBlock(hidden->hidden) -> Linear(hidden->out)."""

    def __init__(self, in_dim, out_dim, hidden_dim, n_blk, norm="none", activation="relu"):
        if n_blk < 2:
            raise ValueError(f"MLP needs n_blk >= 2 (input and output layers), got {n_blk}")
        layers = [nn.Flatten(), LinearBlock(in_dim, hidden_dim, norm, activation)]
        layers += [LinearBlock(hidden_dim, hidden_dim, norm, activation) for _ in range(n_blk - 2)]
        layers.append(nn.Linear(hidden_dim, out_dim))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Basic residual block: conv3x3-norm-act, conv3x3-norm, plus the identity; nothing after the sum."""

    def __init__(self, dim, norm="none", activation="relu", pad_type="zero"):
        super().__init__()
        self.body = nn.Sequential(
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation=activation, pad_type=pad_type),
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation="none", pad_type=pad_type),
        )

    def forward(self, x):
        return x + self.body(x)


class AdaINResBlock(nn.Module):
    """The decoder's residual block: [pad, conv3x3, AdaIN, LReLU], [pad, conv3x3, AdaIN] + skip (docs/method.md 3.4)."""

    def __init__(self, dim, pad_type="reflect"):
        super().__init__()
        self.dim = dim
        self.conv1 = nn.Sequential(make_pad(pad_type, 1), nn.Conv2d(dim, dim, 3))
        self.norm1 = AdaptiveInstanceNorm2d(dim)
        self.act = nn.LeakyReLU(0.2)
        self.conv2 = nn.Sequential(make_pad(pad_type, 1), nn.Conv2d(dim, dim, 3))
        self.norm2 = AdaptiveInstanceNorm2d(dim)

    def forward(self, x, weight, bias):
        """weight, bias: (B, 2 * dim); the first half drives the first AdaIN, the second half the second."""
        w1, w2 = weight.split(self.dim, dim=1)
        b1, b2 = bias.split(self.dim, dim=1)
        y = self.act(self.norm1(self.conv1(x), w1, b1))
        return x + self.norm2(self.conv2(y), w2, b2)


class LiteConv2dBlock(nn.Sequential):
    """1x1 conv -> pad -> depthwise 3x3 conv -> norm -> activation."""

    def __init__(self, in_ch, out_ch, norm="bn", activation="relu", pad_type="reflect"):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 1),
            make_pad(pad_type, 1),
            nn.Conv2d(out_ch, out_ch, 3, groups=out_ch),
            make_conv_norm(norm, out_ch),
            make_activation(activation),
        )


class LiteResBlock(nn.Module):
    """Two LiteConv2dBlocks (the second without activation), identity skip, then ReLU."""

    def __init__(self, dim, norm="bn"):
        super().__init__()
        self.body = nn.Sequential(
            LiteConv2dBlock(dim, dim, norm, "relu"),
            LiteConv2dBlock(dim, dim, norm, "none"),
        )
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.body(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch and three 1x1 -> dilated 3x3 branches (dilation 3, 6, 9),
    each ``out_ch / 4`` wide, concatenated and fused by a 1x1 conv without activation (docs/method.md 3.1)."""

    def __init__(self, in_ch, out_ch=128, dilations=(3, 6, 9), norm="in", activation="lrelu", pad_type="reflect"):
        super().__init__()
        width = out_ch // (len(dilations) + 1)
        branches = [Conv2dBlock(in_ch, width, 1, norm=norm, activation="none")]
        for d in dilations:
            branches.append(nn.Sequential(
                Conv2dBlock(in_ch, width, 1, norm=norm, activation=activation),
                Conv2dBlock(width, width, 3, padding=d, dilation=d, norm=norm, activation="none", pad_type=pad_type),
            ))
        self.branches = nn.ModuleList(branches)
        self.fuse = Conv2dBlock(width * len(branches), out_ch, 1, norm=norm, activation="none")

    def forward(self, x):
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


class UpsampleBlock(nn.Module):
    """Bilinear x``scale`` (align_corners=True), then ``block``; scale 1 skips the resampling."""

    def __init__(self, block, scale):
        super().__init__()
        self.block = block
        self.scale = scale

    def forward(self, x):
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)
        return self.block(x)


class ClassBlock(nn.Module):
    """Bottleneck classifier: Linear(in->512), BatchNorm1d, Dropout(0.5), Linear(512->classes) (docs/method.md 3.7).

    Not a BNNeck: no ReLU, a trainable BN shift, and dropout. ``embed`` gives the 512-d bottleneck
    feature used at test time in stage 2.
    """

    def __init__(self, in_dim, num_classes, bottleneck_dim=512, dropout=0.5):
        super().__init__()
        self.bottleneck = nn.Sequential(nn.Linear(in_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bottleneck_dim, num_classes)
        linear, bn = self.bottleneck
        nn.init.kaiming_normal_(linear.weight, mode="fan_out")
        nn.init.zeros_(linear.bias)
        nn.init.normal_(bn.weight, 1.0, 0.02)
        nn.init.zeros_(bn.bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)
        nn.init.zeros_(self.classifier.bias)

    def embed(self, x):
        return self.bottleneck(x)

    def forward(self, x):
        return self.classifier(self.dropout(self.bottleneck(x)))


def weights_init(kind):
    """``module.apply`` initialiser for Conv*/Linear* weights (bias 0), docs/method.md 3.1.

    ``kaiming``: kaiming-normal, fan_in. ``gaussian``: N(0, 0.02). Norm layers keep their own init.
    """
    _choice("initialiser", kind, ("kaiming", "gaussian"))

    def init(module):
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            return
        if kind == "kaiming":
            nn.init.kaiming_normal_(module.weight, mode="fan_in")
        else:
            nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

    return init
