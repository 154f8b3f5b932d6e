"""The plugin's ranking equals torchreid's compiled ``evaluate_cy`` (upstream's rank_cy.pyx, built
outside the project by tools/rank_cy_reference.py) on inputs without ties."""
import importlib.util
import os

import numpy as np
import pytest
from test_ranking import random_case

from direid_plugin.evaluation.ranking import evaluate_ranking

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def rank_cy():
    spec = importlib.util.spec_from_file_location("rank_cy_reference", os.path.join(REPO, "tools", "rank_cy_reference.py"))
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    try:
        return reference.load()
    except reference.ReferenceUnavailable as e:
        if os.environ.get("CI", "").lower() == "true":  # CI installs Cython ('.[test]') and has the source
            pytest.fail(str(e))
        pytest.skip(str(e))


@pytest.mark.parametrize("seed, num_q, num_g, num_ids, num_cams", [
    (0, 40, 200, 20, 3),      # junk and distractor pids, same-camera removals
    (1, 100, 1000, 10, 2),    # few identities: ~100 true matches per query
    (2, 300, 2000, 150, 6),   # many identities
])
def test_equals_the_compiled_reference_without_ties(rank_cy, seed, num_q, num_g, num_ids, num_cams):
    _, *labels = random_case(seed, num_q, num_g, num_ids, num_cams)
    # Distinct distances within every row (ties are ordered differently by design, see ranking.py).
    rng = np.random.default_rng(seed)
    distmat = (rng.permuted(np.tile(np.arange(num_g), (num_q, 1)), axis=1) + rng.random((num_q, 1))).astype(np.float32)
    assert all(len(np.unique(row)) == num_g for row in distmat)
    cmc, mAP = rank_cy.evaluate_cy(distmat, *labels, 50, False)
    ours = evaluate_ranking(distmat, *labels, max_rank=50)
    # The compiled code sums in float32: equal to float32 rounding.
    np.testing.assert_allclose(ours.cmc[: len(cmc)], cmc, rtol=0, atol=1e-6)
    assert ours.mAP == pytest.approx(float(mAP), abs=2e-6)
    # its cuhk03 mAP ranks the full kept list, as the plugin's does (its CMC draws from numpy's own stream)
    _, cuhk03_mAP = rank_cy.evaluate_cy(distmat, *labels, 50, True)
    assert evaluate_ranking(distmat, *labels, use_metric_cuhk03=True).mAP == pytest.approx(float(cuhk03_mAP), abs=2e-6)
