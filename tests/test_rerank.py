"""The plugin's memory-bounded k-reciprocal re-ranking against torchreid's ``re_ranking``."""
import numpy as np
import pytest
import torch
from torchreid.reid.metrics import compute_distance_matrix
from torchreid.reid.utils import re_ranking

from direid_plugin.evaluation.ranking import evaluate_ranking
from direid_plugin.evaluation.rerank import re_rank


def features(num_query, num_gallery, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_query, dim, generator=generator), torch.randn(num_gallery, dim, generator=generator)


def torchreid_reranked(qf, gf, metric, **kwargs):
    distance = lambda a, b: compute_distance_matrix(a, b, metric).numpy()  # noqa: E731
    return re_ranking(distance(qf, gf), distance(qf, qf), distance(gf, gf), **kwargs)


@pytest.mark.parametrize("num_query, num_gallery, metric, k1, k2, lambda_value, block_elements", [
    (20, 80, "euclidean", 20, 6, 0.3, None),        # the paper's parameters, one block
    (30, 170, "euclidean", 20, 6, 0.3, 1000),       # blocks of 5 rows (a ragged last one)
    (25, 120, "cosine", 5, 3, 0.5, 700),            # round(5 / 2) = 2: numpy's half-to-even
    (40, 100, "euclidean", 7, 1, 0.0, 333),         # no query expansion, Jaccard only
    (15, 60, "cosine", 3, 10, 1.0, None),           # k2 > k1 + 1, original distances only
    (4, 9, "euclidean", 20, 6, 0.3, None),          # fewer images than k1 + 1
])
def test_equals_torchreid(num_query, num_gallery, metric, k1, k2, lambda_value, block_elements):
    qf, gf = features(num_query, num_gallery, 16, seed=num_query)
    expected = torchreid_reranked(qf, gf, metric, k1=k1, k2=k2, lambda_value=lambda_value)
    ours = re_rank(qf, gf, metric, k1, k2, lambda_value, block_elements=block_elements)
    assert ours.shape == (num_query, num_gallery) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-5)


def test_ranking_after_re_ranking_equals_torchreid():
    """Same re-ranked order, hence the same CMC and mAP, on clustered features (a real ranking task)."""
    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(12, 32, generator=generator)
    q_pids, g_pids = np.arange(36) % 12, np.arange(144) % 12
    qf = centres[q_pids] + 0.8 * torch.randn(36, 32, generator=generator)
    gf = centres[g_pids] + 0.8 * torch.randn(144, 32, generator=generator)
    q_camids, g_camids = np.zeros(36, int), np.ones(144, int)
    expected = evaluate_ranking(torchreid_reranked(qf, gf, "euclidean"), q_pids, g_pids, q_camids, g_camids)
    ours = evaluate_ranking(re_rank(qf, gf), q_pids, g_pids, q_camids, g_camids)
    np.testing.assert_array_equal(ours.cmc, expected.cmc)
    assert ours.mAP == pytest.approx(expected.mAP, abs=1e-9)
    plain = evaluate_ranking(compute_distance_matrix(qf, gf), q_pids, g_pids, q_camids, g_camids)
    assert ours.mAP > plain.mAP  # re-ranking helps here: the comparison is not trivial


@pytest.mark.parametrize("kwargs, message", [
    (dict(k1=-1), "k1 must be an int >= 0"),
    (dict(k2=0), "k2 must be an int >= 1"),
    (dict(lambda_value=1.5), r"lambda_value must be in \[0, 1\]"),
    (dict(metric="manhattan"), "metric must be one of"),
])
def test_bad_parameters_name_the_argument(kwargs, message):
    qf, gf = features(3, 5, 4, seed=0)
    with pytest.raises(ValueError, match=message):
        re_rank(qf, gf, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result():
    qf, gf = features(30, 170, 16, seed=3)
    on_cpu = re_rank(qf, gf, block_elements=1000)
    on_gpu = re_rank(qf.cuda(), gf.cuda(), block_elements=1000)
    assert on_gpu.is_cuda
    np.testing.assert_allclose(on_gpu.cpu().numpy(), on_cpu.numpy(), rtol=0, atol=1e-5)
