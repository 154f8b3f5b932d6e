"""DDGAN (stage 1): the modules of degradation decomposition, as one torchreid model.

The wrapper holds E_c, E_d/E'_d, G, D_r, D_d and, optionally, a frozen E_id. Its ``forward``
follows torchreid's contract so that torchreid's test loop evaluates stage 1 directly:
eval mode returns the degradation-invariant identity feature f_inv (B, feat_inv_dim); train mode
returns E_c's classifier logits, or (logits, f_inv) for ``loss='triplet'``. The GAN training
itself (alternating D/G steps) lives in the stage-1 engine, which uses ``decompose``,
``generate``, ``swap`` and the two parameter groups.
"""
import torch.nn as nn

from direid_plugin.models.content_encoder import ContentEncoder
from direid_plugin.models.decoder import AdaINDecoder
from direid_plugin.models.degradation_encoder import DegradationEncoder
from direid_plugin.models.discriminator import MultiScaleDiscriminator
from direid_plugin.models.identity_encoder import IdentityEncoder
from direid_plugin.registry import Signature, plugin_model

LOSSES = ("softmax", "triplet")
# Architecture options read from the ``ddgan`` config node (see from_config).
ARCH_KEYS = ("backbone", "backbone_weights", "feat_inv_dim", "content_dim", "code_dim", "deg_encoder_dim", "adain_mlp_dim",
             "upsample_kernel", "dis_dim", "dr_scales", "dd_scales", "multi_scale", "freeze_trunk", "trunk_bn_eval",
             "eid_name", "eid_weights")


class DDGAN(nn.Module):
    """Degradation decomposition GAN.

    Modules: ``content_encoder`` (E_c), ``degradation_encoder`` (E_d with heads real/self),
    ``decoder`` (G), ``real_discriminator`` (D_r), ``degradation_discriminator`` (D_d) and
    ``identity_encoder`` (frozen E_id, or None when ``eid_name`` is empty).

    ``backbone_weights`` / ``eid_weights``: ``Weights`` (direid_plugin.weights) for E_c's trunk and
    E_id, or None. The defaults are the official architecture. The cost knobs (``content_dim``, also the width of
    E_c's content branch and of the decoder; ``deg_encoder_dim``; ``adain_mlp_dim``;
    ``upsample_kernel``; ``dis_dim``, ``dr_scales``, ``dd_scales``) make stage 1 affordable on a
    CPU (configs/ddgan/ddgan_cpu.yaml).
    """

    def __init__(self, num_classes, loss="softmax", pretrained=False, backbone="osnet_x0_25", backbone_weights=None,
                 feat_inv_dim=2048, content_dim=128, code_dim=128, deg_encoder_dim=64, adain_mlp_dim=512, upsample_kernel=5, dis_dim=32,
                 dr_scales=3, dd_scales=1, multi_scale=True, freeze_trunk=True, trunk_bn_eval=False, eid_name="",
                 eid_weights=None):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unsupported loss '{loss}' for ddgan; choose one of {list(LOSSES)}")
        self.loss = loss
        self.content_encoder = ContentEncoder(
            num_classes, backbone, pretrained, backbone_weights, feat_inv_dim, content_dim, multi_scale,
            freeze_trunk, trunk_bn_eval,
        )
        self.degradation_encoder = DegradationEncoder(code_dim, width=deg_encoder_dim)
        self.decoder = AdaINDecoder(content_dim, code_dim, adain_mlp_dim, upsample_kernel)
        self.real_discriminator = MultiScaleDiscriminator(dr_scales, width=dis_dim)
        self.degradation_discriminator = MultiScaleDiscriminator(dd_scales, width=dis_dim)
        self.identity_encoder = IdentityEncoder(eid_name, eid_weights) if eid_name else None
        self.feature_dim = feat_inv_dim

    def decompose(self, x, synthetic=False):
        """(content map (B, content_dim, H/4, W/4), degradation code (B, code_dim)).

        ``synthetic=True`` encodes the degradation with E'_d (self-degraded images).
        """
        return self.content_encoder.content(x), self.degradation_encoder(x, synthetic)

    def generate(self, content, code):
        return self.decoder(content, code)

    def swap(self, x_a, x_b, synthetic_b=False):
        """Reconstructions and degradation swaps: (x_aa, x_bb, x_ab, x_ba), where x_ij = G(c_i, d_j).

        ``synthetic_b``: x_b is a self-degraded image, so its code comes from E'_d (docs/method.md 4.2).
        """
        c_a, d_a = self.decompose(x_a)
        c_b, d_b = self.decompose(x_b, synthetic_b)
        return (self.generate(c_a, d_a), self.generate(c_b, d_b),
                self.generate(c_a, d_b), self.generate(c_b, d_a))

    def forward(self, x):
        if not self.training:
            return self.content_encoder.identity(x)
        f_inv = self.content_encoder.identity(x)
        logits = self.content_encoder.classifier(f_inv)
        return logits if self.loss == "softmax" else (logits, f_inv)

    def generator_parameters(self):
        """The G-side optimiser's group: E_c head + classifier (+ trunk unless frozen), E_d, G."""
        return (self.content_encoder.trainable_parameters() + list(self.degradation_encoder.parameters())
                + list(self.decoder.parameters()))

    def discriminator_parameters(self):
        """The D-side optimiser's group: D_r and D_d."""
        return list(self.real_discriminator.parameters()) + list(self.degradation_discriminator.parameters())


def from_config(cfg):
    """The factory's architecture kwargs from the ``ddgan`` node of the plugin config."""
    return {key: cfg.ddgan[key] for key in ARCH_KEYS}


@plugin_model(
    "ddgan", options=ARCH_KEYS, config_kwargs=from_config, engine="direid_plugin.engines.ddgan_engine:DDGANEngine",
    signature=Signature("decoder.", "content_encoder.classifier.classifier.weight"),
    written_by="stage 1, engine.name ddgan, writes <save_dir>/ddgan/model.pth.tar-<iteration>",
    export="direid_plugin.export.onnx:export_ddgan",
    tiny_opts=("ddgan.feat_inv_dim", "16", "ddgan.content_dim", "16", "ddgan.code_dim", "16", "ddgan.batch_size", "4",
               "ddgan.max_iter", "2", "ddgan.image_freq", "0"),
    weight_files={"backbone_weights": "ddgan.backbone_weights", "eid_weights": "ddgan.eid_weights"},
    # Stage 1's frozen E_id only serves a training loss.
    training_only=("identity_encoder.", {"eid_name": ""}),
)
def ddgan(num_classes, loss="softmax", pretrained=True, use_gpu=True, **kwargs):
    """torchreid factory. ``pretrained`` goes to torchreid's ImageNet path for the trunk (it needs
    a download; configs use ``pretrained=False`` plus ``backbone_weights``). ``use_gpu`` is accepted
    for torchreid's signature only: the caller moves the model to its device. ``kwargs`` are
    DDGAN's architecture options (ARCH_KEYS); the weight files may be paths."""
    return DDGAN(num_classes, loss=loss, pretrained=pretrained, **kwargs)
