"""The MLR single-shot protocol against hand-computed values, and the split summaries."""
import itertools
from fractions import Fraction as F

import numpy as np
import pytest

from direid_plugin.evaluation.query_blocks import NoValidQueryError
from direid_plugin.evaluation.single_shot import OFFICIAL_NUM_TRIALS, evaluate_single_shot, rank_at, summarise_splits

# Gallery: identities a, b, c with two images each, columns a0 a1 b0 b1 c0 c1.
G_PIDS = np.array([0, 0, 1, 1, 2, 2])
G_CAMS = np.array([1, 1, 1, 1, 2, 1])
# Queries of a, b, c; query c shares camera 2 with c0, which is therefore dropped for it.
Q_PIDS = np.array([0, 1, 2])
Q_CAMS = np.array([0, 0, 2])
DISTMAT = np.array([
    [0.10, 0.30, 0.20, 0.50, 0.40, 0.60],
    [0.40, 0.60, 0.30, 0.50, 0.10, 0.20],
    [0.10, 0.40, 0.20, 0.50, 0.05, 0.30],
])
# Hand computation over the 8 equally likely samplings (one image per identity), 0-based rank r:
#   query a: a0 -> r=0; a1 (0.3) -> r=1 if b0 (0.2) else 0       P(r=0)=3/4, P(r=1)=1/4
#   query b: c (<=0.2) always closer; b0 -> r=1; b1 -> r=2 if a0 P(r=1)=3/4, P(r=2)=1/4
#   query c: c0 dropped, c1 (0.3); r = [a0 sampled] + [b0 sampled] P(r=0)=1/4, 1/2, 1/4
# CMC = mean over queries: [(3/4+0+1/4)/3, (1+3/4+3/4)/3, 1] = [1/3, 5/6, 1]
# AP = 1/(r+1): a 7/8, b 3/8+1/12=11/24, c 1/4+1/4+1/12=7/12; mAP = 23/36.
EXPECTED_CMC = [F(1, 3), F(5, 6), F(1)]
EXPECTED_MAP = F(23, 36)


def enumerate_expectation():
    """Exact expected CMC and mAP by enumerating every sampling, independently of the plugin."""
    cmc, ap = np.zeros(3), 0.0
    for q in range(3):
        eligible = [g for g in range(6) if not (G_PIDS[g] == Q_PIDS[q] and G_CAMS[g] == Q_CAMS[q])]
        candidates = [[g for g in eligible if G_PIDS[g] == pid] for pid in np.unique(G_PIDS)]
        samplings = list(itertools.product(*candidates))
        for sample in samplings:
            ranked = sorted(sample, key=lambda g: DISTMAT[q, g])
            r = [G_PIDS[g] for g in ranked].index(Q_PIDS[q])
            cmc[r:] += 1 / len(samplings)
            ap += 1 / (r + 1) / len(samplings)
    return cmc / 3, ap / 3


def test_hand_computation_matches_exhaustive_enumeration():
    cmc, mAP = enumerate_expectation()
    np.testing.assert_allclose(cmc, [float(x) for x in EXPECTED_CMC])
    assert mAP == pytest.approx(float(EXPECTED_MAP))


def test_many_trials_converge_to_the_exact_expectation():
    result = evaluate_single_shot(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, num_trials=5000, seed=0)
    assert len(result["cmc"]) == 3  # one entry per gallery identity
    # Standard error of each entry is below 0.005 here.
    np.testing.assert_allclose(result["cmc"], [float(x) for x in EXPECTED_CMC], atol=0.02)
    assert result["mAP"] == pytest.approx(float(EXPECTED_MAP), abs=0.02)
    assert result["rank1"] == result["cmc"][0]
    assert result["num_trials"] == 5000 and result["num_valid_queries"] == 3


def test_one_image_per_identity_is_exact_for_any_trials():
    """Gallery a0, b0, c1: ranks are a 0, b 1 (c1 closer), c 2 -> CMC [1/3, 2/3, 1], mAP 11/18."""
    columns = [0, 2, 5]
    for trials, seed in [(1, 0), (7, 3)]:
        result = evaluate_single_shot(
            DISTMAT[:, columns], Q_PIDS, G_PIDS[columns], Q_CAMS, G_CAMS[columns], num_trials=trials, seed=seed
        )
        np.testing.assert_allclose(result["cmc"], [1 / 3, 2 / 3, 1])
        assert result["mAP"] == pytest.approx(11 / 18)
        assert result["rank5"] == 1.0  # past the CMC end: its last value


def test_spread_across_trials_is_reported_beside_the_mean():
    result = evaluate_single_shot(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, num_trials=400, seed=2)
    assert result["num_trials"] == 400
    # Queries sample independently, so a trial's Rank-1 (mean of three indicators) has variance
    # sum p(1-p) / 9 with P(r=0) = 3/4, 0, 1/4 (table above): 1/24, std 0.204; its mAP, from the
    # per-query AP variances 3/64, 1/192, 1/16: 11/864, std 0.113. 400 trials estimate both
    # within about 0.01.
    assert result["rank1_trial_std"] == pytest.approx((1 / 24) ** 0.5, abs=0.02)
    assert result["mAP_trial_std"] == pytest.approx((11 / 864) ** 0.5, abs=0.012)
    one_per_identity = evaluate_single_shot(DISTMAT[:, [0, 2, 5]], Q_PIDS, G_PIDS[[0, 2, 5]], Q_CAMS, G_CAMS[[0, 2, 5]])
    assert one_per_identity["num_trials"] == OFFICIAL_NUM_TRIALS  # the official count by default
    assert one_per_identity["rank1_trial_std"] == pytest.approx(0, abs=1e-12)
    assert one_per_identity["mAP_trial_std"] == pytest.approx(0, abs=1e-12)


def test_same_pid_same_camera_gallery_items_are_dropped():
    """Query c's only gallery image c0 is closest; it counts only from another camera."""
    columns = [0, 2, 4]
    distmat = DISTMAT[2:, columns]
    other_camera = evaluate_single_shot(distmat, Q_PIDS[2:], G_PIDS[columns], np.array([0]), G_CAMS[columns])
    np.testing.assert_allclose(other_camera["cmc"], [1, 1, 1])
    with pytest.raises(NoValidQueryError):
        evaluate_single_shot(distmat, Q_PIDS[2:], G_PIDS[columns], Q_CAMS[2:], G_CAMS[columns])


def test_queries_without_a_match_are_skipped():
    q_pids = np.array([0, 1, 7])
    result = evaluate_single_shot(DISTMAT, q_pids, G_PIDS, Q_CAMS, G_CAMS, num_trials=4000, seed=1)
    assert result["num_valid_queries"] == 2
    np.testing.assert_allclose(result["cmc"], [3 / 8, 7 / 8, 1], atol=0.02)  # queries a and b


def test_seed_determinism():
    rng = np.random.default_rng(0)
    distmat = rng.random((20, 60))
    g_pids, q_pids = np.repeat(np.arange(20), 3), np.arange(20)
    args = (distmat, q_pids, g_pids, np.zeros(20, int), np.ones(60, int))
    first = evaluate_single_shot(*args, num_trials=3, seed=5)
    again = evaluate_single_shot(*args, num_trials=3, seed=5)
    other = evaluate_single_shot(*args, num_trials=3, seed=6)
    np.testing.assert_array_equal(first["cmc"], again["cmc"])
    assert first["mAP"] == again["mAP"]
    assert not np.array_equal(first["cmc"], other["cmc"])


def test_summarise_splits_mean_and_population_std():
    splits = [
        {"cmc": np.array([0.2, 0.5, 1.0]), "mAP": 0.5},
        {"cmc": np.array([0.4, 0.9, 1.0]), "mAP": 0.7},
    ]
    summary = summarise_splits(splits, ranks=(1, 2, 5))
    assert list(summary) == ["rank1", "rank2", "rank5", "mAP"]
    assert summary["rank1"] == pytest.approx((0.3, 0.1))
    assert summary["rank2"] == pytest.approx((0.7, 0.2))
    assert summary["rank5"] == pytest.approx((1.0, 0.0))  # rank past the CMC end
    assert summary["mAP"] == pytest.approx((0.6, 0.1))
    assert rank_at(splits[0]["cmc"], 2) == 0.5
