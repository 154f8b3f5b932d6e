"""mCE and relative mCE as ImageNet-C defines them, on hand-computed cases."""
import math

import pytest

from direid_plugin.evaluation.corruption_metrics import (corruption_errors, mean_ce, relative_corruption_errors,
                                                         severity_mean)

REFERENCE = {"fog": {1: 0.8, 2: 0.6}, "rain": {1: 0.5, 2: 0.3}}  # clean 0.9
MODEL = {"fog": {1: 0.9, 2: 0.8}, "rain": {1: 0.5, 2: 0.4}}  # clean 0.95


def test_a_model_against_itself_scores_100():
    assert mean_ce(corruption_errors(REFERENCE, REFERENCE)) == pytest.approx(100.0)
    assert mean_ce(relative_corruption_errors(REFERENCE, 0.9, REFERENCE, 0.9)) == pytest.approx(100.0)


def test_mce_is_the_mean_of_summed_error_ratios():
    # fog: (0.1 + 0.2) / (0.2 + 0.4) = 0.5; rain: (0.5 + 0.6) / (0.5 + 0.7) = 11/12
    assert corruption_errors(MODEL, REFERENCE) == pytest.approx({"fog": 0.5, "rain": 11 / 12})
    assert mean_ce(corruption_errors(MODEL, REFERENCE)) == pytest.approx(100 * (0.5 + 11 / 12) / 2)


def test_relative_mce_counts_errors_above_each_models_clean_error():
    # fog: (0.05 + 0.15) / (0.1 + 0.3) = 0.5; rain: (0.45 + 0.55) / (0.4 + 0.6) = 1
    relative = relative_corruption_errors(MODEL, 0.95, REFERENCE, 0.9)
    assert relative == pytest.approx({"fog": 0.5, "rain": 1.0})
    assert mean_ce(relative) == pytest.approx(75.0)


def test_a_reference_that_loses_nothing_makes_the_relative_ratio_undefined():
    flat = {"fog": {1: 0.9, 2: 0.9}}
    assert math.isnan(relative_corruption_errors(flat, 0.9, flat, 0.9)["fog"])
    gaining = {"fog": {1: 0.95, 2: 0.9}}  # better than clean under the corruption: a negative drop
    assert math.isnan(relative_corruption_errors(MODEL, 0.95, gaining, 0.9)["fog"])


def test_severity_mean():
    assert severity_mean(REFERENCE) == pytest.approx({"fog": 0.7, "rain": 0.4})
