"""The evaluation step shared by every engine, stock torchreid ones included.

It replaces ``torchreid.reid.engine.Engine._evaluate`` (installed by compat.py) and keeps its
signature and return value, so torchreid's ``test()`` / ``run()`` drive it unchanged. Compared
with torchreid's it:

* keeps features on the model's device for the distance matrices (torchreid moves them to CPU);
* shows tqdm progress bars during feature extraction (``engine.progress``);
* prints only the CMC ranks that exist (torchreid indexes past the CMC and raises IndexError);
* can run the MLR single-shot protocol (``engine.eval_protocol = 'single_shot'``);
* records every result in ``engine.eval_results[dataset_name]`` for result tables.

Distances, ranking (through torchreid's ``evaluate_rank``), re-ranking and ranked-list
pictures are torchreid's own functions.
"""
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from torchreid.reid import metrics
from torchreid.reid.utils import re_ranking, visualize_ranked_results


def _engine_device(engine):
    for model in engine._models.values():
        for param in model.parameters():
            return param.device
    return torch.device("cuda" if engine.use_gpu else "cpu")


def extract_features(engine, loader, desc):
    """Features, pids and camids of every image in ``loader`` (features stay on the device)."""
    device = _engine_device(engine)
    feats, pids, camids = [], [], []
    for data in tqdm(loader, desc=desc, leave=False, disable=not getattr(engine, "progress", True)):
        imgs, batch_pids, batch_camids = engine.parse_data_for_eval(data)
        feats.append(engine.extract_features(imgs.to(device)))
        pids.extend(batch_pids.tolist())
        camids.extend(batch_camids.tolist())
    return torch.cat(feats, 0), np.asarray(pids), np.asarray(camids)


def _rank_metrics(engine, distmat, q_pids, g_pids, q_camids, g_camids, use_metric_cuhk03):
    """CMC and mAP under the engine's protocol."""
    if getattr(engine, "eval_protocol", "standard") == "single_shot":
        from direid_plugin.evaluation.single_shot import evaluate_single_shot

        result = evaluate_single_shot(
            distmat, q_pids, g_pids, q_camids, g_camids,
            num_trials=getattr(engine, "single_shot_trials", 10), seed=getattr(engine, "eval_seed", 0),
        )
        return np.asarray(result["cmc"]), float(result["mAP"])
    cmc, mAP = metrics.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, use_metric_cuhk03=use_metric_cuhk03)
    return np.asarray(cmc), float(mAP)


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
    qf, q_pids, q_camids = extract_features(self, query_loader, f"{dataset_name} query")
    gf, g_pids, g_camids = extract_features(self, gallery_loader, f"{dataset_name} gallery")
    print(f"Features: query {tuple(qf.shape)}, gallery {tuple(gf.shape)}")
    if normalize_feature:
        qf, gf = F.normalize(qf, p=2, dim=1), F.normalize(gf, p=2, dim=1)

    distmat = metrics.compute_distance_matrix(qf, gf, dist_metric).cpu().numpy()
    if rerank:
        print("Applying person re-ranking ...")
        distmat_qq = metrics.compute_distance_matrix(qf, qf, dist_metric).cpu().numpy()
        distmat_gg = metrics.compute_distance_matrix(gf, gf, dist_metric).cpu().numpy()
        distmat = re_ranking(distmat, distmat_qq, distmat_gg)

    cmc, mAP = _rank_metrics(self, distmat, q_pids, g_pids, q_camids, g_camids, use_metric_cuhk03)
    shown = [r for r in ranks if r <= len(cmc)]
    protocol = getattr(self, "eval_protocol", "standard")
    print(f"** Results ({dataset_name}, {protocol} protocol) **")
    print(f"mAP: {mAP:.1%}")
    for r in shown:
        print(f"Rank-{r:<3}: {cmc[r - 1]:.1%}")
    if len(shown) < len(ranks):
        print(f"(ranks {[r for r in ranks if r > len(cmc)]} exceed the CMC length {len(cmc)} and are omitted)")

    if not hasattr(self, "eval_results"):
        self.eval_results = {}
    self.eval_results[dataset_name] = {
        "protocol": protocol,
        "mAP": mAP,
        "cmc": [float(c) for c in cmc[: max(ranks)]],
        **{f"rank{r}": float(cmc[r - 1]) for r in shown},
    }

    if visrank:
        visualize_ranked_results(
            distmat,
            self.datamanager.fetch_test_loaders(dataset_name),
            self.datamanager.data_type,
            width=self.datamanager.width,
            height=self.datamanager.height,
            save_dir=osp.join(save_dir, "visrank_" + dataset_name),
            topk=visrank_topk,
        )
    return cmc[0], mAP
