"""One dataset's test: features of the query and gallery loaders, distances, metrics, printed lines.

This is the body of every plugin engine's ``_evaluate`` (engines/base.py). Compared with
torchreid's own ``Engine._evaluate`` it:

* keeps features on the model's device (torchreid moves them to CPU);
* ranks with the plugin's evaluator (evaluation/ranking.py: block by block from the features,
  never the whole distance matrix; also reports mINP) and re-ranks with the plugin's
  memory-bounded k-reciprocal re-ranking (evaluation/rerank.py), on the features' device;
  ``evaluator='torchreid'`` (config ``test.evaluator``) uses torchreid's own python
  ``evaluate_rank`` and ``re_ranking`` on CPU instead, and reports no mINP;
* flip-averages features with the mirrored images (``flip``, config ``test.flip``);
* shows tqdm progress bars during feature extraction (``progress``);
* prints only the CMC ranks that exist (torchreid indexes past the CMC and raises IndexError);
* can run the MLR single-shot protocol (``protocol='single_shot'``, plugin evaluator only).

Distances and ranked-list pictures are torchreid's own functions.
"""
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from torchreid.reid import metrics
from torchreid.reid.utils import re_ranking

from direid_plugin.evaluation.distances import FeatureDistances
from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.evaluation.ranking import evaluate_ranking
from direid_plugin.evaluation.rerank import re_rank
from direid_plugin.evaluation.single_shot import evaluate_single_shot

EVALUATORS = ("plugin", "torchreid")
PROTOCOLS = ("standard", "single_shot")


def check_evaluation_settings(evaluator, protocol, names=("test.evaluator", "test.protocol"), error=ValueError):
    """Raise ``error`` naming the setting (``names``: where evaluator and protocol come from) for an
    unknown evaluator or protocol, or for the single-shot protocol with torchreid's evaluator."""
    if evaluator not in EVALUATORS:
        raise error(f"{names[0]}: unknown evaluator {evaluator!r}; choose one of {list(EVALUATORS)}")
    if protocol not in PROTOCOLS:
        raise error(f"{names[1]}: unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    if evaluator == "torchreid" and protocol == "single_shot":
        raise error(f"{names[1]}: the single-shot protocol is the plugin's (torchreid has none); "
                    f"set {names[0]} to 'plugin'")


@torch.no_grad()
def extract_features(extract, parse, loader, device, flip=False, progress=True, desc=""):
    """Features (on ``device``), pids and camids of every image in ``loader``.

    ``extract``: images -> features (an engine's ``extract_features``); ``parse``: a batch ->
    (images, pids, camids) (an engine's ``parse_data_for_eval``). Flip-averaged when ``flip``.
    """
    feats, pids, camids = [], [], []
    for data in tqdm(loader, desc=desc, leave=False, disable=not progress):
        imgs, batch_pids, batch_camids = parse(data)
        feats.append(flip_averaged(extract, imgs.to(device), flip))
        pids.extend(batch_pids.tolist())
        camids.extend(batch_camids.tolist())
    return torch.cat(feats, 0), np.asarray(pids), np.asarray(camids)


def require_finite(features, loader, what):
    """Raise ValueError naming ``what`` (e.g. "market1501 query") and its first images when a
    feature is NaN or infinite: a ranking of such features would be meaningless."""
    bad = (~torch.isfinite(features).all(1)).nonzero().flatten()
    if len(bad):
        items = getattr(loader.dataset, "data", None) or []
        named = [items[i][0] for i in bad[:3].tolist() if i < len(items)]
        raise ValueError(f"{what}: {len(bad)} of {len(features)} features are not finite (NaN/inf), e.g. of "
                         f"{named or bad[:3].tolist()}; the model's output is broken (a diverged training or bad "
                         "weights), so nothing can be ranked")


def distances(qf, gf, dist_metric, rerank, evaluator):
    """What is ranked: the plugin's block-wise distances (or its re-ranking), or torchreid's full
    CPU matrix (re-ranked from the q-q and g-g matrices)."""
    if evaluator == "plugin":
        if rerank:
            print("Applying person re-ranking (plugin) ...")
            return re_rank(qf, gf, dist_metric)
        return FeatureDistances(qf, gf, dist_metric)
    distmat = metrics.compute_distance_matrix(qf, gf, dist_metric).cpu().numpy()
    if rerank:
        print("Applying person re-ranking (torchreid) ...")
        distmat_qq = metrics.compute_distance_matrix(qf, qf, dist_metric).cpu().numpy()
        distmat_gg = metrics.compute_distance_matrix(gf, gf, dist_metric).cpu().numpy()
        distmat = re_ranking(distmat, distmat_qq, distmat_gg)
    return distmat


def rank_metrics(distances, labels, settings, use_metric_cuhk03):
    """``(cmc, mAP, mINP, spread)`` under ``settings``' protocol: mINP is None from torchreid's
    evaluator; ``spread`` holds the single-shot protocol's trial count and the standard deviation
    of Rank-1 and mAP across its trials (empty for the standard protocol)."""
    if settings.protocol == "single_shot":
        result = evaluate_single_shot(distances, *labels, num_trials=settings.single_shot_trials, seed=settings.seed)
        spread = {key: result[key] for key in ("num_trials", "rank1_trial_std", "mAP_trial_std")}
        # One true match per trial: its INP and its AP are both 1 / rank.
        return np.asarray(result["cmc"]), float(result["mAP"]), float(result["mAP"]), spread
    if settings.evaluator == "torchreid":
        cmc, mAP = metrics.evaluate_rank(distances, *labels, use_metric_cuhk03=use_metric_cuhk03, use_cython=False)
        return np.asarray(cmc), float(mAP), None, {}
    result = evaluate_ranking(distances, *labels, use_metric_cuhk03=use_metric_cuhk03, seed=settings.seed)
    return result.cmc, result.mAP, result.mINP, {}


def as_matrix(distances):
    """A NumPy distance matrix (for ranked-list pictures)."""
    if isinstance(distances, FeatureDistances):
        distances = metrics.compute_distance_matrix(distances.query, distances.gallery, distances.metric)
    return distances.cpu().numpy() if torch.is_tensor(distances) else distances


def report(dataset_name, settings, cmc, mAP, mINP, ranks, spread=None):
    """Print the metrics and return the result record (``engine.eval_results[dataset_name]``);
    ``spread``: see ``rank_metrics``, printed beside the means and kept in the record."""
    spread = spread or {}
    shown = [r for r in ranks if r <= len(cmc)]
    print(f"** Results ({dataset_name}, {settings.protocol} protocol, {settings.evaluator} evaluator) **")

    def across(key):
        return f" (std across {spread['num_trials']} trials: {spread[key]:.1%})" if spread else ""

    print(f"mAP: {mAP:.1%}{across('mAP_trial_std')}")
    if mINP is not None:
        print(f"mINP: {mINP:.1%}")
    for r in shown:
        print(f"Rank-{r:<3}: {cmc[r - 1]:.1%}{across('rank1_trial_std') if r == 1 else ''}")
    if len(shown) < len(ranks):
        print(f"(ranks {[r for r in ranks if r > len(cmc)]} exceed the CMC length {len(cmc)} and are omitted)")
    return {
        "protocol": settings.protocol,
        "evaluator": settings.evaluator,
        "mAP": mAP,
        "mINP": mINP,
        "cmc": [float(c) for c in cmc[: max(ranks)]],
        **{f"rank{r}": float(cmc[r - 1]) for r in shown},
        **spread,
    }


def normalised(qf, gf, normalize_feature):
    if normalize_feature:
        return F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1)
    return qf, gf
