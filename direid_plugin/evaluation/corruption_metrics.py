"""Corruption robustness summaries, defined as ImageNet-C defines them (Hendrycks & Dietterich, 2019),
with a Re-ID error: E = 1 - Rank-1 or E = 1 - mAP.

For a model f, a reference model r, corruption c and severity s (1-5), with E_clean the error on the
clean test set:

* corruption error      CE_c = sum_s E_{c,s}(f) / sum_s E_{c,s}(r)
* relative CE     relCE_c = sum_s (E_{c,s}(f) - E_clean(f)) / sum_s (E_{c,s}(r) - E_clean(r))
* mCE = 100 * mean_c CE_c, relative mCE = 100 * mean_c relCE_c.

mCE < 100: fewer errors under corruption than the reference; relative mCE < 100: a smaller drop from
its own clean accuracy than the reference's drop. A model's mCE against itself is 100, as is its
relative mCE unless the reference loses nothing under some corruption: relCE_c is then undefined
(NaN, and so is the relative mCE). A reference that loses little (a weak model near its corrupted
level) makes relCE_c explode; choose a reference that clearly loses accuracy under corruption.

Scores are fractions in [0, 1]; ``scores[corruption][severity]`` for one model and one metric.
A benchmark run's results (tools/benchmark_corruptions.py) are, per model,
``{"clean": metrics, "modes": {mode: {key: metrics}}}`` with key ``(corruption, severity)`` or
``RANDOM`` (the random-corruption set) and metrics ``{"rank1", "mAP", "mINP"}``.
"""
import math

METRICS = ("rank1", "mAP", "mINP")
ERROR_METRICS = ("rank1", "mAP")  # the metrics whose errors mCE uses
RANDOM = "random"


def corruption_errors(scores, reference):
    """``{corruption: CE}`` for one metric (``scores`` and ``reference`` as in the module doc)."""
    return {c: _ratio(sum(1 - v for v in scores[c].values()), sum(1 - v for v in reference[c].values()))
            for c in reference}


def relative_corruption_errors(scores, clean, reference, reference_clean):
    """``{corruption: relative CE}``: errors above each model's own clean error; NaN where the
    reference's summed drop is not positive (a reference that gains under a corruption has no drop
    to compare with)."""
    return {c: _ratio(sum(clean - v for v in scores[c].values()), sum(reference_clean - v for v in reference[c].values()))
            for c in reference}


def _ratio(numerator, denominator):
    return numerator / denominator if denominator > 0 else math.nan


def mean_ce(errors):
    """100 x the mean of a ``{corruption: CE}``."""
    return 100.0 * _mean(errors)


def severity_mean(scores):
    """``{corruption: mean over severities}`` of ``scores[corruption][severity]``."""
    return {c: sum(by_level.values()) / len(by_level) for c, by_level in scores.items()}


def by_corruption(mode_results, metric):
    """``{corruption: {severity: value}}`` of ``metric`` from one mode's results (the random set left out)."""
    table = {}
    for key, values in mode_results.items():
        if key != RANDOM:
            table.setdefault(key[0], {})[key[1]] = values[metric]
    return table


def summaries(results, reference):
    """``{model: {mode: row}}``: per metric the mean over the fixed corruptions (``corrupted_<m>``) and
    the random set's value (``random_<m>``); mCE and relative mCE against model ``reference``."""
    ref = results[reference]
    out = {}
    for label, result in results.items():
        out[label] = {}
        for mode, mode_results in result["modes"].items():
            row = {f"corrupted_{m}": _mean(severity_mean(by_corruption(mode_results, m))) for m in METRICS}
            row.update({f"random_{m}": mode_results[RANDOM][m] for m in METRICS})
            for m in ERROR_METRICS:
                mine, theirs = by_corruption(mode_results, m), by_corruption(ref["modes"][mode], m)
                row[f"mCE_{m}"] = mean_ce(corruption_errors(mine, theirs))
                row[f"relative_mCE_{m}"] = mean_ce(relative_corruption_errors(mine, result["clean"][m], theirs,
                                                                              ref["clean"][m]))
            out[label][mode] = row
    return out


def map_drops(results, mode):
    """``{model: {corruption: clean mAP - mean mAP over the severities}}`` in points."""
    return {label: {c: 100.0 * (r["clean"]["mAP"] - v) for c, v in severity_mean(by_corruption(r["modes"][mode], "mAP")).items()}
            for label, r in results.items()}


def _mean(values):
    return sum(values.values()) / len(values)
