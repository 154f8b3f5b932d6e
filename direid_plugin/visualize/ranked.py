"""Ranked lists, torchreid-style, with each image's degradation score drawn under it.

One row per query: the query (blue frame), then its top-k gallery images, framed green for the
query's identity and red otherwise. Gallery images of the query's identity *and* camera are
skipped, as torchreid's evaluation and ``visualize_ranked_results`` skip them. Captions give the
image's camera quality and identity and its D_d score (higher = judged less degraded).
"""
import torch
import torch.nn.functional as F
from torchreid.reid.metrics import compute_distance_matrix

from direid_plugin.data.pairs import IMAGENET_MEAN, IMAGENET_STD
from direid_plugin.visualize.dataset_images import load_batch
from direid_plugin.visualize.grids import BLUE, GREEN, RED, Tile, save_sheet


@torch.no_grad()
def features_and_scores(feature, score, items, transform, device, batch_size=64):
    """``feature(x)`` (N, D) and ``score(x)`` (N,) of torchreid data ``items``, in batches."""
    features, scores = [], []
    for start in range(0, len(items), batch_size):
        x = load_batch([item[0] for item in items[start:start + batch_size]], transform, device)
        features.append(feature(x))
        scores.append(score(x))
    return torch.cat(features), torch.cat(scores)


def top_matches(distmat, query, gallery, topk):
    """Per query, the indices of its ``topk`` nearest gallery items, same identity + camera skipped."""
    lists = []
    for q, order in zip(query, distmat.argsort(dim=1).tolist()):
        valid = [g for g in order if not (gallery[g][1] == q[1] and gallery[g][2] == q[2])]
        lists.append(valid[:topk])
    return lists


def caption(label, score):
    return f"{label} Dd {score:.2f}"


@torch.no_grad()
def save_ranked_lists(path, feature, score, query, gallery, transform, label, device, topk=10,
                      dist_metric="euclidean", normalize_feature=False, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Rank all of ``gallery`` for each item of ``query`` by ``feature`` and save the sheet.

    ``score(x)`` is the D_d score, ``label(item)`` an image's caption prefix; distances as torchreid's
    test (``dist_metric``, ``normalize_feature``). Returns ``(path, top-k gallery indices per query)``.
    """
    qf, q_scores = features_and_scores(feature, score, query, transform, device)
    gf, g_scores = features_and_scores(feature, score, gallery, transform, device)
    if normalize_feature:
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    matches = top_matches(compute_distance_matrix(qf, gf, dist_metric).cpu(), query, gallery, topk)
    rows = []
    for q_index, (q, ranked) in enumerate(zip(query, matches)):
        images = load_batch([q[0]] + [gallery[g][0] for g in ranked], transform, device)
        row = [Tile(images[0], caption(label(q), q_scores[q_index]), BLUE)]
        for x, g in zip(images[1:], ranked):
            row.append(Tile(x, caption(label(gallery[g]), g_scores[g]), GREEN if gallery[g][1] == q[1] else RED))
        rows.append(row)
    return save_sheet(path, rows, *images.shape[-2:], mean, std), matches
