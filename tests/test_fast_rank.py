"""The vectorised evaluator against torchreid's python evaluator and hand-checked cases."""
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchreid warns that its Cython evaluator is missing
    import torchreid.reid.metrics.rank as torchreid_rank

from direid_plugin.evaluation import fast_rank
from direid_plugin.evaluation.fast_rank import NoValidQueryError, evaluate_vectorised


def random_case(seed, num_q=40, num_g=200, num_ids=20, num_cams=3, decimals=None):
    """Random distances; the gallery has junk (-1) and distractor (0) pids, and queries share
    cameras with some of their own gallery images (same-pid-same-camera items to remove)."""
    rng = np.random.default_rng(seed)
    distmat = rng.random((num_q, num_g)).astype(np.float32)
    if decimals is not None:  # many ties
        distmat = distmat.round(decimals)
    q_pids = rng.integers(1, num_ids, num_q)
    g_pids = rng.integers(-1, num_ids + 3, num_g)  # ids >= num_ids never appear as queries
    q_camids = rng.integers(0, num_cams, num_q)
    g_camids = rng.integers(0, num_cams, num_g)
    return distmat, q_pids, g_pids, q_camids, g_camids


def b3_case():
    """Query 0 loses gallery item 0 (same pid, same camera); query 1 loses nothing.

    Ranked kept lists: query 0 -> [g2 (pid 2), g1 (pid 1)]: match at rank 2, CMC [0, 1], AP 1/2.
    Query 1 -> [g2 (pid 2), g1, g0]: match at rank 1, CMC [1, 1, 1], AP 1.
    """
    distmat = np.array([[0.1, 0.3, 0.2], [0.3, 0.2, 0.1]], dtype=np.float32)
    return distmat, np.array([1, 2]), np.array([1, 1, 2]), np.array([0, 0]), np.array([0, 1, 1])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_rank", [50, 10])
def test_market_metric_equals_torchreid_python(seed, max_rank):
    case = random_case(seed)
    expected_cmc, expected_map = torchreid_rank.evaluate_py(*case, max_rank, False)
    cmc, mAP = evaluate_vectorised(*case, max_rank)
    assert cmc.dtype == np.float32 and len(cmc) == len(expected_cmc) == max_rank
    np.testing.assert_allclose(cmc, expected_cmc, rtol=0, atol=1e-6)
    assert mAP == pytest.approx(expected_map, abs=1e-6)


def test_ties_and_chunking_match_torchreid_python(monkeypatch):
    """Distances with many ties, ranked 3 queries at a time: same argsort order per row."""
    case = random_case(7, num_q=30, num_g=120, decimals=1)
    expected_cmc, expected_map = torchreid_rank.evaluate_py(*case, 50, False)
    monkeypatch.setattr(fast_rank, "CHUNK_BYTES", 3 * 120 * fast_rank._BYTES_PER_ELEMENT)
    cmc, mAP = evaluate_vectorised(*case, 50)
    np.testing.assert_array_equal(cmc, expected_cmc)
    assert mAP == pytest.approx(expected_map, abs=1e-6)


def test_ragged_small_gallery_where_torchreid_python_fails():
    case = b3_case()
    with pytest.raises(ValueError, match="inhomogeneous"):
        torchreid_rank.evaluate_py(*case, 50, False)
    cmc, mAP = evaluate_vectorised(*case, 50)
    # Length min(max_rank, num_gallery) = 3; query 0's 2-long CMC is padded with its last value 1.
    np.testing.assert_allclose(cmc, [0.5, 1.0, 1.0])
    assert mAP == pytest.approx(0.75)


def test_equal_short_rows_keep_torchreid_length():
    """Every query loses one of 10 gallery items: torchreid's CMC has 9 entries, so does ours."""
    # 5 identities, one gallery image in camera 0 (dropped for their query) and one in camera 1.
    g_pids, g_camids = np.tile(np.arange(5), 2), np.repeat([0, 1], 5)
    q_pids, q_camids = np.arange(5), np.zeros(5, int)
    distmat = np.random.default_rng(0).random((5, 10))
    expected_cmc, expected_map = torchreid_rank.evaluate_py(distmat, q_pids, g_pids, q_camids, g_camids, 50, False)
    cmc, mAP = evaluate_vectorised(distmat, q_pids, g_pids, q_camids, g_camids, 50)
    assert len(expected_cmc) == len(cmc) == 9
    np.testing.assert_array_equal(cmc, expected_cmc)
    assert mAP == pytest.approx(expected_map, abs=1e-6)


def test_queries_without_match_are_skipped_and_none_valid_raises():
    distmat, q_pids, g_pids, q_camids, g_camids = b3_case()
    q_pids = np.array([1, 99])  # query 1's identity is not in the gallery
    cmc, mAP = evaluate_vectorised(distmat, q_pids, g_pids, q_camids, g_camids, 2)
    np.testing.assert_allclose(cmc, [0.0, 1.0])  # query 0 alone
    assert mAP == pytest.approx(0.5)
    with pytest.raises(NoValidQueryError, match="do not appear in gallery") as error:
        evaluate_vectorised(distmat, np.array([98, 99]), g_pids, q_camids, g_camids, 2)
    assert isinstance(error.value, AssertionError) and isinstance(error.value, ValueError)


def test_shape_mismatch_is_a_clear_error():
    distmat, q_pids, g_pids, q_camids, g_camids = b3_case()
    with pytest.raises(ValueError, match="g_pids has 2 entries"):
        evaluate_vectorised(distmat, q_pids, g_pids[:2], q_camids, g_camids, 5)


def test_cuhk03_metric_with_one_image_per_identity_is_exact():
    """Sampling one image per identity changes nothing, so the random metric is deterministic."""
    rng = np.random.default_rng(3)
    distmat = rng.random((25, 30))
    g_pids, g_camids = np.arange(30), np.ones(30, int)
    q_pids, q_camids = rng.integers(0, 30, 25), np.zeros(25, int)
    expected_cmc, expected_map = torchreid_rank.evaluate_py(distmat, q_pids, g_pids, q_camids, g_camids, 20, True)
    cmc, mAP = evaluate_vectorised(distmat, q_pids, g_pids, q_camids, g_camids, 20, True)
    np.testing.assert_allclose(cmc, expected_cmc, atol=1e-6)
    assert mAP == pytest.approx(expected_map, abs=1e-6)


def test_cuhk03_metric_close_to_torchreid_python_over_repeats():
    case = random_case(11, num_q=100, num_g=120, num_ids=15)
    case[0][case[1][:, None] == case[2]] *= 0.2  # true matches closer: rank-1 far from 0 and 1
    ours, theirs = [], []
    for seed in range(5):
        np.random.seed(seed)
        theirs.append(torchreid_rank.evaluate_py(*case, 10, True))
        ours.append(evaluate_vectorised(*case, 10, True, seed=seed))
    our_cmc = np.mean([c for c, _ in ours], axis=0)
    their_cmc = np.mean([c for c, _ in theirs], axis=0)
    assert len(our_cmc) == len(their_cmc) == 10
    # ~50 valid queries x 50 samplings on each side: differences of a few points are noise.
    np.testing.assert_allclose(our_cmc, their_cmc, atol=0.03)
    assert 0.1 < their_cmc[0] < 0.9  # the comparison is not trivially saturated
    # AP uses the full (unsampled) ranking in both.
    assert ours[0][1] == pytest.approx(theirs[0][1], abs=1e-6)


def test_cuhk03_metric_is_seeded():
    case = random_case(5)
    first = evaluate_vectorised(*case, 10, True, seed=1)
    np.testing.assert_array_equal(first[0], evaluate_vectorised(*case, 10, True, seed=1)[0])
    assert not np.array_equal(first[0], evaluate_vectorised(*case, 10, True, seed=2)[0])
