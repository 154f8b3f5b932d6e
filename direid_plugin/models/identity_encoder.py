"""Frozen identity encoder E_id for the paper's identity-preserving loss (Eq. 3, 8)."""
import torch.nn as nn

from direid_plugin.models.backbones import build_torchreid_model
from direid_plugin.weights import load_partial


class IdentityEncoder(nn.Module):
    """Any torchreid model by name, loaded from torchreid-format ``Weights`` and frozen.

    Its parameters never require grad and it stays in eval mode even when a parent module calls
    ``.train()``, so its BatchNorm statistics never move. Gradients still flow *through* it to
    its input, which is what the identity-preserving loss on generated images needs.
    ``forward`` returns the model's eval feature (B, feature_dim).
    """

    def __init__(self, name, weights):
        super().__init__()
        if weights is None:
            raise ValueError(f"the identity encoder '{name}' needs a Re-ID weights file (eid_weights): "
                             "a frozen, randomly initialised network cannot judge identity")
        self.model = build_torchreid_model(name)
        self.name = name
        self.load_report = load_partial(self.model, weights)
        self.feature_dim = self.model.feature_dim
        self.model.requires_grad_(False)
        self.train(False)

    def train(self, mode=True):
        return super().train(False)

    def forward(self, x):
        return self.model(x)
