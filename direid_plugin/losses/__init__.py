"""Stage-1 (DDGAN) losses: adversarial, degradation ranking, reconstruction and identity terms."""
from direid_plugin.losses.gan import (GAN_TYPES, d_adversarial, discriminator_loss, g_adversarial,
                                      generator_loss, gradient_penalty)
from direid_plugin.losses.identity import (feature_distance, identification_loss, identity_preserving_loss,
                                           kl_detach)
from direid_plugin.losses.degradation_ranking import margin_ranking, order_pair, rank_label, ranking_d_loss, ranking_g_loss
from direid_plugin.losses.reconstruction import PIXEL_LOSSES, content_invariance_loss, pixel_loss

__all__ = [
    "GAN_TYPES", "d_adversarial", "g_adversarial", "gradient_penalty", "discriminator_loss", "generator_loss",
    "margin_ranking", "rank_label", "order_pair", "ranking_d_loss", "ranking_g_loss",
    "PIXEL_LOSSES", "pixel_loss", "content_invariance_loss",
    "feature_distance", "identity_preserving_loss", "identification_loss", "kl_detach",
]
