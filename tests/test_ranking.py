"""The plugin's ranking evaluator against torchreid's python evaluator and hand-checked cases."""
import warnings

import numpy as np
import pytest
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchreid warns that its Cython evaluator is missing
    import torchreid.reid.metrics.rank as torchreid_rank
from torchreid.reid.metrics import compute_distance_matrix

from direid_plugin.evaluation.distances import FeatureDistances
from direid_plugin.evaluation.query_blocks import NoValidQueryError
from direid_plugin.evaluation.ranking import evaluate_cy, evaluate_ranking


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


def assert_same_as_torchreid(case, max_rank=50, reference_case=None, **kwargs):
    expected_cmc, expected_map = torchreid_rank.evaluate_py(*(reference_case or case), max_rank, False)
    result = evaluate_ranking(*case, max_rank, **kwargs)
    assert result.cmc.dtype == np.float32 and len(result.cmc) == len(expected_cmc)
    np.testing.assert_allclose(result.cmc, expected_cmc, rtol=0, atol=1e-6)
    assert result.mAP == pytest.approx(expected_map, abs=1e-9)
    return result


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_rank", [50, 10])
def test_market_metric_equals_torchreid_python(seed, max_rank):
    assert_same_as_torchreid(random_case(seed), max_rank)


@pytest.mark.parametrize("rows_per_block", [1, 3, 7, 40])
def test_block_boundaries_do_not_change_the_result(rows_per_block):
    """Blocks of 1, 3 and 7 queries (40 = 5 x 7 + 5: a ragged last block) and a single block."""
    case = random_case(8)
    assert_same_as_torchreid(case, block_elements=rows_per_block * case[0].shape[1])


def test_ties_within_true_or_within_false_matches_equal_torchreid():
    """Tied distances that never mix a true and a false match: every tie order gives one answer."""
    distmat, q_pids, g_pids, q_camids, g_camids = random_case(7, num_q=30, num_g=120)
    is_match = q_pids[:, None] == g_pids
    # false matches on a 0.1 grid, true ones on a 0.05-offset grid: many ties, none across
    distmat = np.where(is_match, np.round(distmat, 1) + 0.05, np.round(distmat, 1)).astype(np.float32)
    assert (np.diff(np.sort(distmat, axis=1), axis=1) == 0).mean() > 0.5
    assert_same_as_torchreid((distmat, q_pids, g_pids, q_camids, g_camids), block_elements=3 * 120)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # order keys / search + tie placement
@pytest.mark.parametrize("decimals", [1, 0])
def test_mixed_ties_are_broken_by_gallery_index(decimals, dtype):
    """A true and a false match at the same distance rank in gallery order: torchreid's answer on
    distances nudged by index (same order, no ties). ``decimals=0``: every distance is 0 or 1."""
    case = random_case(9, num_q=30, num_g=120, decimals=decimals)
    nudged = case[0].astype(np.float64) + np.arange(120) * 1e-6
    assert_same_as_torchreid((case[0].astype(dtype), *case[1:]), reference_case=(nudged, *case[1:]),
                             block_elements=3 * 120)


def test_float32_order_keys_agree_with_the_general_path():
    """Negative distances, -0.0 against +0.0 (equal, so ordered by index), infinities and ties: the
    float32 path (order keys) ranks exactly as the float64 path (search, then ties by index)."""
    rng = np.random.default_rng(5)
    _, *labels = random_case(5, num_q=30, num_g=150)
    distmat = rng.choice(np.array([-np.inf, -2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf], dtype=np.float32), (30, 150))
    as_float32 = evaluate_ranking(distmat, *labels)
    as_float64 = evaluate_ranking(distmat.astype(np.float64), *labels)
    np.testing.assert_array_equal(as_float32.cmc, as_float64.cmc)
    assert (as_float32.mAP, as_float32.mINP) == (as_float64.mAP, as_float64.mINP)


def test_ragged_small_gallery_where_torchreid_python_fails():
    case = b3_case()
    with pytest.raises(ValueError, match="inhomogeneous"):
        torchreid_rank.evaluate_py(*case, 50, False)
    result = evaluate_ranking(*case, 50)
    # Length min(max_rank, num_gallery) = 3; query 0's 2-long CMC is padded with its last value 1.
    np.testing.assert_allclose(result.cmc, [0.5, 1.0, 1.0])
    assert result.mAP == pytest.approx(0.75)
    assert result.mINP == pytest.approx(0.75)  # one true match each: INP = AP


def test_equal_short_rows_keep_torchreid_length():
    """Every query loses one of 10 gallery items: torchreid's CMC has 9 entries, so does ours."""
    # 5 identities, one gallery image in camera 0 (dropped for their query) and one in camera 1.
    g_pids, g_camids = np.tile(np.arange(5), 2), np.repeat([0, 1], 5)
    q_pids, q_camids = np.arange(5), np.zeros(5, int)
    distmat = np.random.default_rng(0).random((5, 10))
    result = assert_same_as_torchreid((distmat, q_pids, g_pids, q_camids, g_camids))
    assert len(result.cmc) == 9


def test_tiny_galleries():
    """One and two gallery images; a query whose only true match is removed is skipped."""
    one = (np.array([[0.5]]), np.array([3]), np.array([3]), np.array([0]), np.array([1]))
    result = evaluate_ranking(*one)
    np.testing.assert_array_equal(result.cmc, [1.0])
    assert (result.mAP, result.mINP, result.num_valid_queries) == (1.0, 1.0, 1)
    two = (np.array([[0.2, 0.1], [0.3, 0.4]]), np.array([3, 4]), np.array([3, 4]), np.array([0, 0]), np.array([1, 0]))
    result = evaluate_ranking(*two)  # query 1 loses its match (same camera): only query 0 counts
    np.testing.assert_array_equal(result.cmc, [0.0, 1.0])
    assert result.mAP == 0.5 and result.num_valid_queries == 1


def test_queries_without_match_are_skipped_and_none_valid_raises():
    distmat, q_pids, g_pids, q_camids, g_camids = b3_case()
    q_pids = np.array([1, 99])  # query 1's identity is not in the gallery
    result = evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, 2)
    np.testing.assert_allclose(result.cmc, [0.0, 1.0])  # query 0 alone
    assert result.mAP == pytest.approx(0.5) and result.num_valid_queries == 1
    with pytest.raises(NoValidQueryError, match="do not appear in gallery") as error:
        evaluate_ranking(distmat, np.array([98, 99]), g_pids, q_camids, g_camids, 2)
    assert isinstance(error.value, AssertionError) and isinstance(error.value, ValueError)


def test_bad_input_is_a_clear_error():
    distmat, q_pids, g_pids, q_camids, g_camids = b3_case()
    with pytest.raises(ValueError, match="g_pids has 2 entries, the distances need 3"):
        evaluate_ranking(distmat, q_pids, g_pids[:2], q_camids, g_camids, 5)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ranking(np.where(distmat > 0.25, np.nan, distmat), q_pids, g_pids, q_camids, g_camids)


def reference_minp(distmat, q_pids, g_pids, q_camids, g_camids):
    """INP = true matches / 1-based rank of the last one, over the kept ranking; mean over valid queries."""
    values = []
    for i in range(len(distmat)):
        kept = [g for g in np.argsort(distmat[i], kind="stable") if not (g_pids[g] == q_pids[i] and g_camids[g] == q_camids[i])]
        hits = [rank for rank, g in enumerate(kept, 1) if g_pids[g] == q_pids[i]]
        if hits:
            values.append(len(hits) / hits[-1])
    return np.mean(values)


def test_minp_hand_example_and_reference():
    # One query, true matches (pid 1) at ranks 1 and 4 of 5: INP = 2 / 4.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    result = evaluate_ranking(distmat, np.array([1]), np.array([1, 2, 3, 1, 2]), np.array([0]), np.array([1] * 5))
    assert result.mINP == pytest.approx(0.5) and result.mAP == pytest.approx((1 + 2 / 4) / 2)
    for seed in range(3):
        case = random_case(seed)
        assert evaluate_ranking(*case).mINP == pytest.approx(reference_minp(*case), abs=1e-12)


def test_infinite_distances():
    """One +inf entry in every third row and a -inf one (no ties: those would follow numpy's order)."""
    case = random_case(4)
    distmat = case[0].astype(np.float64)
    distmat[::3, 5] = np.inf
    distmat[1, 7] = -np.inf
    assert_same_as_torchreid((distmat, *case[1:]))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_features_ranked_block_by_block_equal_the_full_matrix(metric):
    generator = torch.Generator().manual_seed(0)
    qf, gf = torch.randn(30, 16, generator=generator), torch.randn(150, 16, generator=generator)
    _, q_pids, g_pids, q_camids, g_camids = random_case(2, num_q=30, num_g=150)
    distmat = compute_distance_matrix(qf, gf, metric).numpy()
    full = assert_same_as_torchreid((distmat, q_pids, g_pids, q_camids, g_camids))
    blocked = evaluate_ranking(FeatureDistances(qf, gf, metric), q_pids, g_pids, q_camids, g_camids,
                               block_elements=4 * 150)
    np.testing.assert_allclose(blocked.cmc, full.cmc, atol=1e-6)
    assert blocked.mAP == pytest.approx(full.mAP, abs=1e-9) and blocked.mINP == pytest.approx(full.mINP, abs=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result():
    case = random_case(3)
    on_cpu = evaluate_ranking(*case, use_metric_cuhk03=False)
    on_gpu = evaluate_ranking(torch.from_numpy(case[0]).cuda(), *(torch.from_numpy(a).cuda() for a in case[1:]))
    np.testing.assert_array_equal(on_gpu.cmc, on_cpu.cmc)
    assert on_gpu.mAP == pytest.approx(on_cpu.mAP, abs=1e-12) and on_gpu.mINP == pytest.approx(on_cpu.mINP, abs=1e-12)
    for seed in range(2):
        np.testing.assert_array_equal(evaluate_cy(*case, 10, True, seed=seed)[0],
                                      evaluate_ranking(torch.from_numpy(case[0]).cuda(), *case[1:], 10, True, seed).cmc)


def test_cuhk03_metric_with_one_image_per_identity_is_exact():
    """Sampling one image per identity changes nothing, so the random metric is deterministic."""
    rng = np.random.default_rng(3)
    distmat = rng.random((25, 30))
    g_pids, g_camids = np.arange(30), np.ones(30, int)
    q_pids, q_camids = rng.integers(0, 30, 25), np.zeros(25, int)
    expected_cmc, expected_map = torchreid_rank.evaluate_py(distmat, q_pids, g_pids, q_camids, g_camids, 20, True)
    cmc, mAP = evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, 20, True)
    np.testing.assert_allclose(cmc, expected_cmc, atol=1e-6)
    assert mAP == pytest.approx(expected_map, abs=1e-9)


def test_cuhk03_metric_close_to_torchreid_python_over_repeats():
    case = random_case(11, num_q=100, num_g=120, num_ids=15)
    case[0][case[1][:, None] == case[2]] *= 0.2  # true matches closer: rank-1 far from 0 and 1
    ours, theirs = [], []
    for seed in range(5):
        np.random.seed(seed)
        theirs.append(torchreid_rank.evaluate_py(*case, 10, True))
        ours.append(evaluate_cy(*case, 10, True, seed=seed))
    our_cmc = np.mean([c for c, _ in ours], axis=0)
    their_cmc = np.mean([c for c, _ in theirs], axis=0)
    assert len(our_cmc) == len(their_cmc) == 10
    # ~50 valid queries x 50 samplings on each side: differences of a few points are noise.
    np.testing.assert_allclose(our_cmc, their_cmc, atol=0.03)
    assert 0.1 < their_cmc[0] < 0.9  # the comparison is not trivially saturated
    # AP uses the full (unsampled) ranking in both.
    assert ours[0][1] == pytest.approx(theirs[0][1], abs=1e-9)


def test_cuhk03_metric_is_seeded():
    case = random_case(5)
    first = evaluate_cy(*case, 10, True, seed=1)
    np.testing.assert_array_equal(first[0], evaluate_cy(*case, 10, True, seed=1)[0])
    assert not np.array_equal(first[0], evaluate_cy(*case, 10, True, seed=2)[0])
