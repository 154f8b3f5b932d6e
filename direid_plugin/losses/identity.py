"""Identity losses: identity preservation through a frozen E_id (paper Eq. 3, 8), identification
cross-entropy on E_c's classifier (Eq. 9), and the detached KL consistency (docs/method.md 5.3)."""
import torch
import torch.nn.functional as F

FEATURE_DISTANCES = ("l1", "l2", "cosine")


def feature_distance(a, b, kind="l1"):
    """Mean distance between feature batches: l1 (mean |a - b|), l2 (mean squared), cosine (mean 1 - cos)."""
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "l2":
        return F.mse_loss(a, b)
    if kind == "cosine":
        return (1 - F.cosine_similarity(a, b, dim=1)).mean()
    raise ValueError(f"unknown feature distance '{kind}'; choose one of {list(FEATURE_DISTANCES)}")


def identity_preserving_loss(eid, generated, source, distance="l1"):
    """Distance between E_id features of generated images and of the images whose content they carry.

    The source features are targets (no gradient); gradients reach ``generated`` through the frozen E_id.
    """
    with torch.no_grad():
        target = eid(source)
    return feature_distance(eid(generated), target, distance)


def identification_loss(logits, labels):
    """Plain cross-entropy on E_c's classifier logits for real images (Eq. 9)."""
    return F.cross_entropy(logits, labels)


def kl_detach(target_logits, logits):
    """KL(softmax(target) || softmax(logits)), batch mean, with the target side detached
    (``id_smooth_type = kl_detach``): only ``logits`` receives gradients."""
    return F.kl_div(F.log_softmax(logits, dim=1), F.softmax(target_logits.detach(), dim=1), reduction="batchmean")
