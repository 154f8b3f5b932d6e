"""AdaIN decoder G: content map + degradation code -> image (docs/method.md 3.4)."""
import torch.nn as nn

from direid_plugin.models.blocks import MLP, AdaINResBlock, Conv2dBlock, UpsampleBlock, weights_init

N_RES_BLOCKS = 4
N_UPSAMPLINGS = 2  # content is at 1/4 resolution: two x2 stages restore the input size


class AdaINDecoder(nn.Module):
    """4 AdaIN residual blocks, 2 x (bilinear x2, conv5x5, LayerNorm, LReLU), 2 x conv3x3 + LReLU,
    and a 1x1 conv to RGB with no output activation (images stay in ImageNet-normalised space).

    Eight MLPs (code -> 512 -> 512 -> 2 * content_dim, LReLU) give the AdaIN parameters:
    ``scale_mlps[k]`` / ``shift_mlps[k]`` drive both AdaIN layers of residual block k (first half
    of the output to the first layer, second half to the second). Works for any content map of at
    least 2 x 2, i.e. any input size divisible by 4.

    Cost knobs (official values as defaults): the width is ``content_dim`` (the residual blocks run
    on the content map; each up-sampling stage halves it), ``mlp_dim`` is the AdaIN MLPs' hidden
    width and ``upsample_kernel`` the (odd) kernel size of the two up-sampling convolutions.
    """

    def __init__(self, content_dim=128, code_dim=128, mlp_dim=512, upsample_kernel=5, out_channels=3):
        super().__init__()
        if upsample_kernel < 1 or upsample_kernel % 2 == 0:
            raise ValueError(f"ddgan.upsample_kernel must be a positive odd number, got {upsample_kernel}")
        if content_dim % 2 ** N_UPSAMPLINGS:
            raise ValueError(f"ddgan.content_dim must be divisible by {2 ** N_UPSAMPLINGS} (the decoder halves it "
                             f"{N_UPSAMPLINGS} times), got {content_dim}")
        self.res_blocks = nn.ModuleList(AdaINResBlock(content_dim) for _ in range(N_RES_BLOCKS))
        ups, ch = [], content_dim
        for _ in range(N_UPSAMPLINGS):
            ups.append(UpsampleBlock(Conv2dBlock(ch, ch // 2, upsample_kernel, 1, upsample_kernel // 2, norm="ln",
                                                 activation="lrelu", pad_type="reflect"), 2))
            ch //= 2
        self.upsample = nn.Sequential(*ups)
        self.output = nn.Sequential(
            Conv2dBlock(ch, ch, 3, 1, 1, activation="lrelu", pad_type="reflect"),
            Conv2dBlock(ch, ch, 3, 1, 1, activation="lrelu", pad_type="reflect"),
            nn.Conv2d(ch, out_channels, 1),
        )
        adain_width = 2 * content_dim
        self.scale_mlps = nn.ModuleList(MLP(code_dim, adain_width, mlp_dim, 3, activation="lrelu")
                                        for _ in range(N_RES_BLOCKS))
        self.shift_mlps = nn.ModuleList(MLP(code_dim, adain_width, mlp_dim, 3, activation="lrelu")
                                        for _ in range(N_RES_BLOCKS))
        self.apply(weights_init("kaiming"))

    def forward(self, content, code):
        """content (B, content_dim, h, w), code (B, code_dim) -> image (B, 3, 4h, 4w)."""
        x = content
        for block, scale_mlp, shift_mlp in zip(self.res_blocks, self.scale_mlps, self.shift_mlps):
            x = block(x, scale_mlp(code), shift_mlp(code))
        return self.output(self.upsample(x))
