"""DFEN (stage 2): degradation-invariant + degradation-sensitive features, one torchreid model.

f_inv comes from the stage-1 content encoder E_c (its identity branch; the trunk is trainable
now), f_sen from a Re-ID backbone E_id (models/sensitive_encoder.py), optionally weighted by a
channel attention (models/attention.py; paper Eq. 13). The identity feature is
f_fused = concat(f_inv, f_sen * Att) and three heads classify f_inv, f_sen and f_fused (Eq. 14).

Train mode returns a dict for the stage-2 engine (engines/dfen_engine.py):
``logits_inv``, ``logits_sen``, ``logits_fused``, the pre-head features ``f_inv``, ``f_sen``
(after attention) and ``f_fused`` (the triplet loss uses these), and ``attention`` (B, sen_dim)
when an attention is on. Eval mode returns one (B, feature_dim) tensor, ``test_feature``:

| test_feature | head 'classblock' (official, docs/method.md 6.1) | head 'bnneck'                 |
|--------------|--------------------------------------------------|-------------------------------|
| inv          | 512-d bottleneck of the inv head                  | BN(f_inv)                     |
| sen          | 512-d bottleneck of the sen head                  | BN(f_sen)                     |
| fused        | concat of the two (the fused head is train-only)  | BN(f_fused) of the fused head |

Stage-1 weights come from a DDGAN checkpoint (``ddgan_checkpoint``, see ``DFEN.load_stage1``).
"""
import torch
import torch.nn as nn

from direid_plugin.models.attention import build_attention, degradation_statistics
from direid_plugin.models.blocks import ClassBlock
from direid_plugin.models.content_encoder import ContentEncoder
from direid_plugin.models.discriminator import MultiScaleDiscriminator
from direid_plugin.models.sensitive_encoder import SensitiveEncoder
from direid_plugin.registry import Signature, plugin_model
from direid_plugin.weights import load_parts

HEADS = ("bnneck", "classblock")
TEST_FEATURES = ("fused", "inv", "sen")
BRANCHES = ("inv", "sen", "fused")
# E_c / D_d architecture options, read from the ``ddgan`` config node: they must match stage 1.
DDGAN_KEYS = ("backbone", "backbone_weights", "feat_inv_dim", "content_dim", "multi_scale", "dd_scales", "dis_dim")
# DFEN's own options, read from the ``dfen`` config node.
DFEN_KEYS = ("ddgan_checkpoint", "use_dil", "sen_backbone", "sen_weights", "shared_trunk", "attention",
             "attention_dim", "head", "test_feature")


class BNNeck(nn.Module):
    """BatchNorm1d with its shift fixed at 0, then a bias-free linear classifier (Luo et al. 2019,
    "Bag of tricks"; docs/method.md 3.7 ClassBlock_BNNeck). ``embed`` is the post-BN test feature;
    the triplet loss takes the feature before the BN."""

    def __init__(self, in_dim, num_classes):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)

    def fixed_parameters(self):
        return [self.bn.bias]

    def embed(self, x):
        return self.bn(x)

    def forward(self, x):
        return self.classifier(self.bn(x))


def _choice(key, value, allowed):
    if value not in allowed:
        raise ValueError(f"dfen.{key}: unknown value '{value}'; choose one of {list(allowed)}")


# What a stage-1 checkpoint that does not fit needs (weights.load_parts names the file and the part).
STAGE1_FIX = ("it must be a DDGAN (stage-1) checkpoint trained with the same ddgan.* architecture "
              "(backbone, feat_inv_dim, multi_scale, ...)")


class DFEN(nn.Module):
    """Degradation-invariant feature embedding network (stage 2).

    Weight arguments are ``Weights`` (direid_plugin.weights) or None; the registered factory reads
    paths. Args (E_c / D_d architecture, as ``ddgan.*`` in stage 1): ``backbone``, ``backbone_weights``,
    ``feat_inv_dim``, ``content_dim``, ``multi_scale`` (False = Table-3 "w/o multi-scale"),
    ``dd_scales``, ``dis_dim``. DFEN options (``dfen.*``, see config.py): ``ddgan_checkpoint``, ``use_dil``
    (False = Table-3 "w/o DIL": E_c keeps its ``backbone_weights`` init), ``sen_backbone``,
    ``sen_weights``, ``shared_trunk``, ``attention``, ``attention_dim``, ``head``, ``test_feature``.
    """

    def __init__(self, num_classes, pretrained=False, backbone="osnet_x0_25", backbone_weights=None, feat_inv_dim=2048,
                 content_dim=128, multi_scale=True, dd_scales=1, dis_dim=32, ddgan_checkpoint=None, use_dil=True,
                 sen_backbone="osnet_x0_25", sen_weights=None, shared_trunk=False, attention="guided", attention_dim=128,
                 head="bnneck", test_feature="fused"):
        super().__init__()
        _choice("head", head, HEADS)
        _choice("test_feature", test_feature, TEST_FEATURES)
        if not use_dil and attention == "guided":
            raise ValueError("dfen.use_dil False (Table 3 'w/o DIL') uses nothing from stage 1, but dfen.attention "
                             "'guided' needs the stage-1 D_d: set dfen.attention to 'none' (Table 3) or 'self'")
        self.content_encoder = ContentEncoder(num_classes, backbone, pretrained, backbone_weights, feat_inv_dim,
                                              content_dim, multi_scale, freeze_trunk=False)
        self.content_encoder.classifier = None  # the inv head replaces it (stage-1 weights go there for classblock)
        self.shared_trunk = shared_trunk
        self.sensitive_encoder = SensitiveEncoder(
            sen_backbone, pretrained, sen_weights, self.content_encoder.trunk.channels[-1] if shared_trunk else None)
        sen_dim = self.sensitive_encoder.feature_dim
        self.attention_kind = attention
        self.degradation_discriminator = MultiScaleDiscriminator(dd_scales, width=dis_dim) if attention == "guided" else None
        self.attention = build_attention(attention, sen_dim, attention_dim, dd_scales)
        make_head = ClassBlock if head == "classblock" else BNNeck
        dims = {"inv": feat_inv_dim, "sen": sen_dim, "fused": feat_inv_dim + sen_dim}
        self.heads = nn.ModuleDict({branch: make_head(dims[branch], num_classes) for branch in BRANCHES})
        self.head_kind = head
        self.test_feature = test_feature
        self.use_dil = use_dil
        self.freeze_fixed_parameters()
        self.feature_dim = self._feature_dim()
        if ddgan_checkpoint is not None and (use_dil or attention == "guided"):
            self.load_stage1(ddgan_checkpoint)

    def _feature_dim(self):
        embed = {branch: self.heads[branch].classifier.in_features for branch in BRANCHES}
        if self.test_feature != "fused":
            return embed[self.test_feature]
        return embed["inv"] + embed["sen"] if self.head_kind == "classblock" else embed["fused"]

    def fixed_parameters(self):
        """Parameters no loss may change: the frozen D_d and the BNNecks' zero shifts."""
        fixed = [] if self.degradation_discriminator is None else list(self.degradation_discriminator.parameters())
        return fixed + [p for head in self.heads.values() if isinstance(head, BNNeck) for p in head.fixed_parameters()]

    def freeze_fixed_parameters(self):
        """(Re-)freeze ``fixed_parameters``; torchreid's ``open_all_layers`` unfreezes everything each epoch."""
        for p in self.fixed_parameters():
            p.requires_grad_(False)

    def load_stage1(self, stage1):
        """From stage-1 ``Weights``: E_c (trunk + head) unless ``use_dil`` is False, D_d for the guided
        attention, and for the classblock head E_c's stage-1 ClassBlock into the inv head when its
        class count fits."""
        required, optional = {}, {}
        if self.use_dil:
            required.update({"content_encoder.trunk": self.content_encoder.trunk,
                             "content_encoder.head": self.content_encoder.head})
            if self.head_kind == "classblock":
                optional["content_encoder.classifier"] = self.heads["inv"]
        if self.attention_kind == "guided":
            required["degradation_discriminator"] = self.degradation_discriminator
        loaded = load_parts(stage1, required, optional, fix=STAGE1_FIX)
        print(f'=> Loaded stage-1 {loaded} from "{stage1.source}"')
        return loaded

    def attention_weights(self, x, f_sen):
        """(B, sen_dim) weights in (0, 1), or None when the attention is off."""
        if self.attention is None:
            return None
        signal = degradation_statistics(self.degradation_discriminator, x) if self.attention_kind == "guided" \
            else f_sen.detach()  # official self-gating stops the gradient (docs/method.md 3.8)
        return self.attention(signal)

    def branch_features(self, x):
        """(f_inv, f_sen after attention, attention weights or None)."""
        levels = self.content_encoder.levels(x)
        f_inv = self.content_encoder.head.identity(levels)
        f_sen = self.sensitive_encoder(levels[-1] if self.shared_trunk else x)
        weights = self.attention_weights(x, f_sen)
        return f_inv, f_sen if weights is None else f_sen * weights, weights

    def invariant_logits(self, x):
        """The inv head's logits alone (memory replay's KL term needs no other branch)."""
        return self.heads["inv"](self.content_encoder.identity(x))

    def embed(self, f_inv, f_sen):
        """The eval-mode feature selected by ``test_feature`` (see the module docstring)."""
        if self.test_feature == "inv":
            return self.heads["inv"].embed(f_inv)
        if self.test_feature == "sen":
            return self.heads["sen"].embed(f_sen)
        if self.head_kind == "classblock":  # official: C's bottleneck is unused at test time
            return torch.cat([self.heads["inv"].embed(f_inv), self.heads["sen"].embed(f_sen)], 1)
        return self.heads["fused"].embed(torch.cat([f_inv, f_sen], 1))

    def forward(self, x):
        f_inv, f_sen, weights = self.branch_features(x)
        if not self.training:
            return self.embed(f_inv, f_sen)
        features = {"inv": f_inv, "sen": f_sen, "fused": torch.cat([f_inv, f_sen], 1)}
        out = {f"f_{b}": f for b, f in features.items()}
        out.update({f"logits_{b}": self.heads[b](f) for b, f in features.items()})
        if weights is not None:
            out["attention"] = weights
        return out


def from_config(cfg):
    """The factory's kwargs: E_c / D_d architecture from ``cfg.ddgan``, the rest from ``cfg.dfen``."""
    return {**{k: cfg.ddgan[k] for k in DDGAN_KEYS}, **{k: cfg.dfen[k] for k in DFEN_KEYS}}


@plugin_model(
    "dfen", options=DDGAN_KEYS + DFEN_KEYS, config_kwargs=from_config, engine="direid_plugin.engines.dfen_engine:DFENEngine",
    signature=Signature("sensitive_encoder.", "heads.inv.classifier.weight"),
    written_by="stage 2, engine.name dfen, writes <save_dir>/model/model.pth.tar-<epoch>",
    export="direid_plugin.export.onnx:export_dfen",
    # Table 3's "w/o DIL" without attention or replay needs no stage-1 checkpoint.
    tiny_opts=("ddgan.feat_inv_dim", "16", "ddgan.content_dim", "16", "dfen.use_dil", "False", "dfen.attention", "none",
               "dfen.memory_replay", "none", "train.max_epoch", "1"),
    weight_files={"backbone_weights": "ddgan.backbone_weights", "ddgan_checkpoint": "dfen.ddgan_checkpoint",
                  "sen_weights": "dfen.sen_weights"},
)
def dfen(num_classes, loss="softmax", pretrained=True, use_gpu=True, **kwargs):
    """torchreid factory. DFEN trains with its own engine (engine.name dfen), so ``loss`` only
    completes torchreid's signature; ``use_gpu`` likewise (the caller moves the model).
    ``pretrained`` is torchreid's ImageNet init of both backbones (needs a download; configs use
    weight files instead). ``kwargs``: DDGAN_KEYS + DFEN_KEYS; the weight files may be paths."""
    return DFEN(num_classes, pretrained=pretrained, **kwargs)
