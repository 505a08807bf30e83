"""Early stopping of exploration runs that cannot win: the decision rules (pure functions).

A run with score reporting on (see :mod:`.checkpoint_score`) records its exploration score at
fixed *fractions* of its own training (``scores.csv`` in its train directory).  A *curve* is
``{fraction: score}``.  Every decision compares the run's score at a fraction with the curves
of *reference* runs: the nodes of the same block that had finished (ok or pruned) before the
run's batch started.  The references are frozen when the batch is written, so a decision is
a pure function of the run's own score and of files that no longer change: the same seed
gives the same decisions, whatever the order or speed of the parallel jobs.  The first batch
of a block has no reference and is never pruned.

Runs are compared at the same fraction of their own training (a node whose mutation changed
the training length is compared at "25 % through", not at the same iteration).  Scores are
maximised; a missing or non-finite score counts as the worst possible (-inf).  A decision is
only taken before the end (fraction < 1).

Rules (``pruning.rule`` of the experiment; off when ``pruning`` is absent or null):

``median`` (median stopping, as Optuna's MedianPruner / Vizier)
    At every reported fraction ``f >= warmup_fraction``: prune when the score is strictly
    below the median of the references' scores at ``f`` (at least ``min_references`` of
    them must have a score at ``f``).

``successive_halving`` (``min_fraction`` r, ``reduction_factor`` eta; as Optuna's
SuccessiveHalvingPruner with the rungs on the fraction axis)
    Rungs at ``r, r*eta, r*eta**2, ...`` (below 1).  At a rung, the competitors are the run
    and the references with a score at that rung (at least ``min_references`` references);
    the run goes on when its score is among the best ``max(1, n // eta)`` of those ``n``
    scores (ties go on), else it is pruned.  So with fewer than ``eta`` competitors only the
    best goes on.

The settings (:func:`resolve_settings`) also give ``report_every``: scores are reported at
``report_every, 2*report_every, ...``, at every rung, and at 1 (the final score, never
pruned): :func:`report_fractions`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError

__all__ = [
    "DEFAULTS",
    "RULES",
    "Decision",
    "decide",
    "fraction_key",
    "halving_decision",
    "median_decision",
    "report_fractions",
    "resolve_settings",
    "rung_fractions",
]

RULES = ("median", "successive_halving")
DEFAULTS: dict[str, Any] = {
    "report_every": 0.25,
    "min_references": 1,
    "warmup_fraction": 0.25,
    "min_fraction": 0.25,
    "reduction_factor": 3,
}
#: digits of a fraction used as a key (0.1 + 0.2 and 0.3 are the same report)
DIGITS = 6
#: the most reports of one run (report_every >= 1e-3 keeps the grid small)
MAX_REPORTS = 1000

Curve = Mapping[float, float]


def fraction_key(fraction: float) -> float:
    """A fraction rounded to :data:`DIGITS` digits: the key of a report in a curve."""
    return round(float(fraction), DIGITS)


def _value(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return -math.inf
    return v if math.isfinite(v) else -math.inf


@dataclass(frozen=True)
class Decision:
    """The verdict at one reported fraction: ``prune``, and why (``reason``, one line)."""

    prune: bool
    reason: str
    fraction: float
    score: float
    threshold: float | None = None
    n_references: int = 0


def resolve_settings(pruning: Mapping[str, Any] | None, source: str = "experiment") -> dict | None:
    """The pruning settings with defaults filled (None when pruning is off); ConfigError naming
    ``source`` and the field for a value the schema cannot check."""
    if pruning is None:
        return None
    out = {**DEFAULTS, **dict(pruning)}
    if out.get("rule") not in RULES:
        raise ConfigError(
            f"{source}: field 'pruning.rule': must be one of {', '.join(RULES)}, "
            f"got {out.get('rule')!r}"
        )
    every = float(out["report_every"])
    if not 1.0 / MAX_REPORTS <= every <= 1.0:
        raise ConfigError(
            f"{source}: field 'pruning.report_every': must be in [{1.0 / MAX_REPORTS:g}, 1], "
            f"got {every!r}"
        )
    for key in ("warmup_fraction", "min_fraction"):
        if not 0.0 <= float(out[key]) < 1.0:
            raise ConfigError(
                f"{source}: field 'pruning.{key}': must be in [0, 1), got {out[key]!r}"
            )
    if float(out["min_fraction"]) <= 0:
        raise ConfigError(f"{source}: field 'pruning.min_fraction': must be > 0")
    if int(out["reduction_factor"]) != out["reduction_factor"] or out["reduction_factor"] < 2:
        raise ConfigError(
            f"{source}: field 'pruning.reduction_factor': must be an integer >= 2, "
            f"got {out['reduction_factor']!r}"
        )
    if int(out["min_references"]) != out["min_references"] or out["min_references"] < 1:
        raise ConfigError(
            f"{source}: field 'pruning.min_references': must be an integer >= 1, "
            f"got {out['min_references']!r}"
        )
    out["reduction_factor"] = int(out["reduction_factor"])
    out["min_references"] = int(out["min_references"])
    for key in ("report_every", "warmup_fraction", "min_fraction"):
        out[key] = float(out[key])
    return out


def rung_fractions(min_fraction: float, reduction_factor: int) -> tuple[float, ...]:
    """``min_fraction * reduction_factor**k`` below 1 (keys of :func:`fraction_key`)."""
    if not 0 < min_fraction < 1 or reduction_factor < 2:
        raise ValueError("need 0 < min_fraction < 1 and reduction_factor >= 2")
    out, f = [], float(min_fraction)
    while fraction_key(f) < 1:
        out.append(fraction_key(f))
        f *= reduction_factor
    return tuple(out)


def report_fractions(settings: Mapping[str, Any]) -> tuple[float, ...]:
    """The sorted fractions at which a run reports its score: the ``report_every`` grid, the
    rungs (successive halving) and 1."""
    every = float(settings["report_every"])
    grid = {fraction_key(k * every) for k in range(1, int(math.floor(1 / every + 1e-9)) + 1)}
    if settings["rule"] == "successive_halving":
        grid.update(rung_fractions(settings["min_fraction"], settings["reduction_factor"]))
    grid.add(1.0)
    return tuple(sorted(f for f in grid if 0 < f <= 1))


def _at(references: Iterable[Curve], fraction: float) -> list[float]:
    key = fraction_key(fraction)
    out = []
    for curve in references:
        values = {fraction_key(f): s for f, s in curve.items()}
        if key in values:
            out.append(_value(values[key]))
    return out


def _keep(fraction: float, score: float, why: str, **kw) -> Decision:
    return Decision(False, why, fraction_key(fraction), score, **kw)


def median_decision(
    fraction: float,
    score: float,
    references: Sequence[Curve],
    *,
    warmup_fraction: float = 0.0,
    min_references: int = 1,
) -> Decision:
    """Median stopping at ``fraction`` (module docstring)."""
    f, s = fraction_key(fraction), _value(score)
    if f >= 1:
        return _keep(f, s, "the run is finished")
    if f < warmup_fraction:
        return _keep(f, s, f"warm-up (before {warmup_fraction:g})")
    refs = _at(references, f)
    if len(refs) < min_references:
        return _keep(f, s, f"{len(refs)} reference(s) at {f:g}, {min_references} needed")
    median = float(statistics.median(refs))
    verdict = s < median
    word = "below" if verdict else "not below"
    return Decision(
        verdict,
        f"score {s:.4g} at {f:g} of the training is {word} the median {median:.4g} of "
        f"{len(refs)} reference node(s)",
        f,
        s,
        median,
        len(refs),
    )


def halving_decision(
    fraction: float,
    score: float,
    references: Sequence[Curve],
    *,
    min_fraction: float,
    reduction_factor: int,
    min_references: int = 1,
) -> Decision:
    """Successive halving at ``fraction`` (module docstring); no decision off the rungs."""
    f, s = fraction_key(fraction), _value(score)
    if f >= 1:
        return _keep(f, s, "the run is finished")
    if f not in rung_fractions(min_fraction, reduction_factor):
        return _keep(f, s, f"{f:g} is not a rung")
    refs = _at(references, f)
    if len(refs) < min_references:
        return _keep(f, s, f"{len(refs)} reference(s) at {f:g}, {min_references} needed")
    competing = sorted([s, *refs], reverse=True)
    keep = max(1, len(competing) // reduction_factor)
    threshold = competing[keep - 1]
    verdict = s < threshold
    return Decision(
        verdict,
        f"score {s:.4g} at rung {f:g} is {'not ' if verdict else ''}among the best {keep} of "
        f"{len(competing)} (threshold {threshold:.4g})",
        f,
        s,
        threshold,
        len(refs),
    )


def decide(
    settings: Mapping[str, Any], fraction: float, score: float, references: Sequence[Curve]
) -> Decision:
    """The decision of the rule in ``settings`` (resolved, :func:`resolve_settings`)."""
    rule = settings["rule"]
    if rule == "median":
        return median_decision(
            fraction,
            score,
            references,
            warmup_fraction=settings["warmup_fraction"],
            min_references=settings["min_references"],
        )
    if rule == "successive_halving":
        return halving_decision(
            fraction,
            score,
            references,
            min_fraction=settings["min_fraction"],
            reduction_factor=settings["reduction_factor"],
            min_references=settings["min_references"],
        )
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
