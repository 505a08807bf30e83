"""The pruning rules on hand-made score curves: exact decisions."""

import math

import pytest

from connectome_gnn.config import ConfigError
from connectome_gnn.explore.pruning import (
    decide,
    halving_decision,
    median_decision,
    report_fractions,
    resolve_settings,
    rung_fractions,
)

# four finished reference nodes, reporting at quarters of their training
REFS = [
    {0.25: 0.30, 0.5: 0.50, 0.75: 0.60, 1.0: 0.70},
    {0.25: 0.10, 0.5: 0.20, 0.75: 0.30, 1.0: 0.35},
    {0.25: 0.40, 0.5: 0.70, 0.75: 0.85, 1.0: 0.90},
    {0.25: 0.20},  # pruned at 0.25: no score later
]


def test_median_prunes_strictly_below_the_median_at_the_same_fraction():
    # at 0.25 the references are 0.30, 0.10, 0.40, 0.20: median 0.25
    d = median_decision(0.25, 0.24, REFS)
    assert d.prune and d.threshold == pytest.approx(0.25) and d.n_references == 4
    assert not median_decision(0.25, 0.25, REFS).prune  # equal to the median: goes on
    assert not median_decision(0.25, 0.26, REFS).prune
    # at 0.5 only three references have a score (0.50, 0.20, 0.70): median 0.50
    d = median_decision(0.5, 0.49, REFS)
    assert d.prune and d.threshold == pytest.approx(0.5) and d.n_references == 3
    assert "below the median 0.5 of 3 reference node(s)" in d.reason
    assert not median_decision(0.5, 0.5, REFS).prune


def test_median_warmup_min_references_end_and_bad_scores():
    assert not median_decision(0.25, 0.0, REFS, warmup_fraction=0.5).prune
    assert median_decision(0.5, 0.0, REFS, warmup_fraction=0.5).prune  # at the warm-up: decides
    assert not median_decision(0.5, 0.0, REFS, min_references=4).prune  # only 3 at 0.5
    assert median_decision(0.25, 0.0, REFS, min_references=4).prune
    assert not median_decision(1.0, -5.0, REFS).prune  # a finished run is never pruned
    assert not median_decision(0.25, 0.0, []).prune  # first batch: no reference
    assert median_decision(0.25, math.nan, REFS).prune  # NaN is the worst score
    # a fraction off the references' grid has no reference value
    assert not median_decision(0.3, 0.0, REFS).prune
    # 0.1 + 0.15 is the same report as 0.25
    assert median_decision(0.1 + 0.15, 0.0, REFS).prune


def test_rungs_and_report_fractions():
    assert rung_fractions(0.25, 2) == (0.25, 0.5)
    assert rung_fractions(0.1, 3) == (0.1, 0.3, 0.9)
    assert rung_fractions(0.2, 5) == (0.2,)
    med = resolve_settings({"rule": "median", "report_every": 0.25})
    assert report_fractions(med) == (0.25, 0.5, 0.75, 1.0)
    sh = resolve_settings(
        {
            "rule": "successive_halving",
            "report_every": 0.5,
            "min_fraction": 0.1,
            "reduction_factor": 3,
        }
    )
    assert report_fractions(sh) == (0.1, 0.3, 0.5, 0.9, 1.0)
    assert report_fractions(resolve_settings({"rule": "median", "report_every": 1})) == (1.0,)


def test_successive_halving_keeps_the_best_n_over_eta_at_each_rung():
    kw = {"min_fraction": 0.25, "reduction_factor": 2}
    # rung 0.25: competitors {s, 0.30, 0.10, 0.40, 0.20}: n = 5, keep 5 // 2 = 2, threshold 0.30
    d = halving_decision(0.25, 0.29, REFS, **kw)
    assert d.prune and d.threshold == pytest.approx(0.30) and d.n_references == 4
    assert not halving_decision(0.25, 0.30, REFS, **kw).prune  # tie with the 2nd: goes on
    assert not halving_decision(0.25, 0.35, REFS, **kw).prune
    # rung 0.5: {s, 0.50, 0.20, 0.70}: n = 4, keep 2, threshold 0.50
    assert halving_decision(0.5, 0.45, REFS, **kw).prune
    assert not halving_decision(0.5, 0.55, REFS, **kw).prune
    # 0.75 is no rung for (0.25, 2): never decides there
    d = halving_decision(0.75, 0.0, REFS, **kw)
    assert not d.prune and "not a rung" in d.reason
    # eta = 3 at 0.25: keep max(1, 5 // 3) = 1: only a new best goes on
    assert halving_decision(0.25, 0.39, REFS, min_fraction=0.25, reduction_factor=3).prune
    assert not halving_decision(0.25, 0.41, REFS, min_fraction=0.25, reduction_factor=3).prune
    # fewer competitors than eta: only the best goes on; with min_references 2 no decision
    one = [{0.25: 0.5}]
    assert halving_decision(0.25, 0.4, one, **kw).prune
    assert not halving_decision(0.25, 0.4, one, **kw, min_references=2).prune
    assert not halving_decision(0.25, 0.0, [], **kw).prune


def test_decide_dispatches_on_the_rule():
    med = resolve_settings({"rule": "median"})
    assert med["warmup_fraction"] == 0.25 and med["report_every"] == 0.25
    assert decide(med, 0.5, 0.49, REFS).prune
    sh = resolve_settings({"rule": "successive_halving", "reduction_factor": 2})
    assert decide(sh, 0.25, 0.29, REFS).prune and not decide(sh, 0.25, 0.31, REFS).prune
    assert resolve_settings(None) is None


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"rule": "asha"}, "pruning.rule"),
        ({"rule": "median", "report_every": 0}, "pruning.report_every"),
        ({"rule": "median", "warmup_fraction": 1.0}, "pruning.warmup_fraction"),
        ({"rule": "successive_halving", "min_fraction": 0}, "pruning.min_fraction"),
        ({"rule": "successive_halving", "reduction_factor": 1}, "pruning.reduction_factor"),
        ({"rule": "successive_halving", "reduction_factor": 2.5}, "pruning.reduction_factor"),
        ({"rule": "median", "min_references": 0}, "pruning.min_references"),
    ],
)
def test_bad_settings_name_the_field(bad, field):
    with pytest.raises(ConfigError, match=f"exp.yaml: field '{field}'"):
        resolve_settings(bad, source="exp.yaml")
