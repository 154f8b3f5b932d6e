"""The evaluation step shared by every engine, stock torchreid ones included.

It replaces ``torchreid.reid.engine.Engine._evaluate`` (installed by compat.py) and keeps its
signature and return value, so torchreid's ``test()`` / ``run()`` drive it unchanged. Compared
with torchreid's it:

* keeps features on the model's device (torchreid moves them to CPU);
* ranks with the plugin's evaluator (evaluation/ranking.py: block by block from the features,
  never the whole distance matrix; also reports mINP) and re-ranks with the plugin's
  memory-bounded k-reciprocal re-ranking (evaluation/rerank.py), on the features' device;
  ``engine.evaluator = 'torchreid'`` (config ``test.evaluator``) uses torchreid's own python
  ``evaluate_rank`` and ``re_ranking`` on CPU instead, and reports no mINP;
* shows tqdm progress bars during feature extraction (``engine.progress``);
* prints only the CMC ranks that exist (torchreid indexes past the CMC and raises IndexError);
* can run the MLR single-shot protocol (``engine.eval_protocol = 'single_shot'``, plugin only);
* records every result in ``engine.eval_results[dataset_name]`` for result tables.

Distances and ranked-list pictures are torchreid's own functions.
"""
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from torchreid.reid import metrics
from torchreid.reid.utils import re_ranking, visualize_ranked_results

from direid_plugin.evaluation.distances import FeatureDistances
from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.evaluation.ranking import evaluate_ranking
from direid_plugin.evaluation.rerank import re_rank

EVALUATORS = ("plugin", "torchreid")
PROTOCOLS = ("standard", "single_shot")


def _engine_device(engine):
    for model in engine._models.values():
        for param in model.parameters():
            return param.device
    return torch.device("cuda" if engine.use_gpu else "cpu")


def extract_features(engine, loader, desc):
    """Features, pids and camids of every image in ``loader`` (features stay on the device),
    flip-averaged when ``engine.test_flip`` (config ``test.flip``)."""
    device = _engine_device(engine)
    flip = getattr(engine, "test_flip", False)
    feats, pids, camids = [], [], []
    for data in tqdm(loader, desc=desc, leave=False, disable=not getattr(engine, "progress", True)):
        imgs, batch_pids, batch_camids = engine.parse_data_for_eval(data)
        feats.append(flip_averaged(engine.extract_features, imgs.to(device), flip))
        pids.extend(batch_pids.tolist())
        camids.extend(batch_camids.tolist())
    return torch.cat(feats, 0), np.asarray(pids), np.asarray(camids)


def check_evaluation_settings(evaluator, protocol, names=("engine.evaluator", "engine.eval_protocol"), error=ValueError):
    """Raise ``error`` naming the setting (``names``: where evaluator and protocol come from) for an
    unknown evaluator or protocol, or for the single-shot protocol with torchreid's evaluator."""
    if evaluator not in EVALUATORS:
        raise error(f"{names[0]}: unknown evaluator {evaluator!r}; choose one of {list(EVALUATORS)}")
    if protocol not in PROTOCOLS:
        raise error(f"{names[1]}: unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    if evaluator == "torchreid" and protocol == "single_shot":
        raise error(f"{names[1]}: the single-shot protocol is the plugin's (torchreid has none); "
                    f"set {names[0]} to 'plugin'")


def _plugin_distances(qf, gf, dist_metric, rerank):
    """What the plugin ranks: re-ranked distances, or distances computed block by block from features."""
    if rerank:
        print("Applying person re-ranking (plugin) ...")
        return re_rank(qf, gf, dist_metric)
    return FeatureDistances(qf, gf, dist_metric)


def _torchreid_distances(qf, gf, dist_metric, rerank):
    """torchreid's own: the full matrix on CPU, re-ranked from the q-q and g-g matrices."""
    distmat = metrics.compute_distance_matrix(qf, gf, dist_metric).cpu().numpy()
    if rerank:
        print("Applying person re-ranking (torchreid) ...")
        distmat_qq = metrics.compute_distance_matrix(qf, qf, dist_metric).cpu().numpy()
        distmat_gg = metrics.compute_distance_matrix(gf, gf, dist_metric).cpu().numpy()
        distmat = re_ranking(distmat, distmat_qq, distmat_gg)
    return distmat


def _rank_metrics(engine, distances, labels, use_metric_cuhk03):
    """CMC, mAP and mINP (None from torchreid's evaluator) under the engine's protocol."""
    protocol = getattr(engine, "eval_protocol", "standard")
    seed = getattr(engine, "eval_seed", 0)
    if protocol == "single_shot":
        from direid_plugin.evaluation.single_shot import evaluate_single_shot

        result = evaluate_single_shot(distances, *labels, num_trials=getattr(engine, "single_shot_trials", 10), seed=seed)
        # One true match per trial: its INP and its AP are both 1 / rank.
        return np.asarray(result["cmc"]), float(result["mAP"]), float(result["mAP"])
    if getattr(engine, "evaluator", "plugin") == "torchreid":
        cmc, mAP = metrics.evaluate_rank(distances, *labels, use_metric_cuhk03=use_metric_cuhk03, use_cython=False)
        return np.asarray(cmc), float(mAP), None
    result = evaluate_ranking(distances, *labels, use_metric_cuhk03=use_metric_cuhk03, seed=seed)
    return result.cmc, result.mAP, result.mINP


def _as_matrix(distances):
    """A NumPy distance matrix (for ranked-list pictures)."""
    if isinstance(distances, FeatureDistances):
        distances = metrics.compute_distance_matrix(distances.query, distances.gallery, distances.metric)
    return distances.cpu().numpy() if torch.is_tensor(distances) else distances


@torch.no_grad()
def evaluate(
    self,
    dataset_name="",
    query_loader=None,
    gallery_loader=None,
    dist_metric="euclidean",
    normalize_feature=False,
    visrank=False,
    visrank_topk=10,
    save_dir="",
    use_metric_cuhk03=False,
    ranks=(1, 5, 10, 20),
    rerank=False,
):
    evaluator, protocol = getattr(self, "evaluator", "plugin"), getattr(self, "eval_protocol", "standard")
    check_evaluation_settings(evaluator, protocol)
    qf, q_pids, q_camids = extract_features(self, query_loader, f"{dataset_name} query")
    gf, g_pids, g_camids = extract_features(self, gallery_loader, f"{dataset_name} gallery")
    print(f"Features: query {tuple(qf.shape)}, gallery {tuple(gf.shape)}")
    if normalize_feature:
        qf, gf = F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1)

    distances = (_torchreid_distances if evaluator == "torchreid" else _plugin_distances)(qf, gf, dist_metric, rerank)
    cmc, mAP, mINP = _rank_metrics(self, distances, (q_pids, g_pids, q_camids, g_camids), use_metric_cuhk03)
    shown = [r for r in ranks if r <= len(cmc)]
    print(f"** Results ({dataset_name}, {protocol} protocol, {evaluator} evaluator) **")
    print(f"mAP: {mAP:.1%}")
    if mINP is not None:
        print(f"mINP: {mINP:.1%}")
    for r in shown:
        print(f"Rank-{r:<3}: {cmc[r - 1]:.1%}")
    if len(shown) < len(ranks):
        print(f"(ranks {[r for r in ranks if r > len(cmc)]} exceed the CMC length {len(cmc)} and are omitted)")

    if not hasattr(self, "eval_results"):
        self.eval_results = {}
    self.eval_results[dataset_name] = {
        "protocol": protocol,
        "evaluator": evaluator,
        "mAP": mAP,
        "mINP": mINP,
        "cmc": [float(c) for c in cmc[: max(ranks)]],
        **{f"rank{r}": float(cmc[r - 1]) for r in shown},
    }

    if visrank:
        visualize_ranked_results(
            _as_matrix(distances),
            self.datamanager.fetch_test_loaders(dataset_name),
            self.datamanager.data_type,
            width=self.datamanager.width,
            height=self.datamanager.height,
            save_dir=osp.join(save_dir, "visrank_" + dataset_name),
            topk=visrank_topk,
        )
    return cmc[0], mAP
