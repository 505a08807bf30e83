"""Parameter space and mutations of training configurations.

A parameter space maps a training-parameter name (as in ``train.schema.yaml``) to a
:class:`ParamSpec`.  :func:`mutate` changes one or two parameters of a configuration:

* ``log`` parameters (learning rates, regularisation coefficients, training length) move by a
  multiplicative factor ``10**(±u)`` with ``u`` uniform in ``[step/10, step]`` decades;
* linear parameters move by ``±u * (high - low)`` with ``u`` uniform in ``[step/10, step]``;
* ``choice`` parameters take another of their ``choices``;
* results are clipped to ``[low, high]``, floats rounded to 2 significant digits (so the log
  reads ``1.3E-3``, not ``1.3270187E-3``) and ints to integers;
* a ``zero`` parameter may also be 0 ("off"): from 0 a mutation switches it on at ``start``,
  and with probability ``p_zero`` a mutation switches it off;
* a mutation never returns the old value: a parameter that cannot change (a single choice,
  ``low == high``) is never picked.

Everything random comes from the :class:`numpy.random.Generator` passed in;
:func:`slot_rng` builds it from the exploration seed, the iteration and the slot, so a
proposal is reproducible.

Each family declares its default space (``search_space``, :func:`default_space`; FlyVis:
ranges around its shipped recipes, see ``FlyVisFamily.search_space``).  The signal family's
(:data:`SIGNAL_SPACE`) has the ranges of the seed-004 sparsity study:

====================== ====== ============== ===== ===============================================
parameter              type   range          log   notes
====================== ====== ============== ===== ===============================================
lr_W                   float  1E-4 .. 1E-2   yes   seed 004 ``learning_rate_W_start``
lr                     float  1E-5 .. 1E-3   yes   seed 004 ``learning_rate_start``
lr_emb                 float  1E-5 .. 1E-2   yes   seed 004 ``learning_rate_embedding_start``
coeff_W_L1             float  0, 1E-10..1E-4 yes   off or on; switched on at 1E-6 (seed 004)
coeff_edge_diff        float  0, 1 .. 2000   yes   off or on; switched on at 100 (seed 001: 600-1500)
batch_size             choice 1, 2, 4, 8           seed 004
data_augmentation_loop int    10 .. 400      yes   training length (seed 004 uses 100)
n_epochs               int    1 .. 10        no    training length
W_solve                choice none, lstsq, lasso   the W solver (train.schema.yaml)
lin_edge_knots         int    8 .. 96        yes   spline lin_edge (solver recipes: 24, 96)
lin_edge_knot_scale    float  0.05 .. 1      yes   knot scale / activity std (solver_fast: 0.15)
W_solve_frames         int    2000 .. 50000  yes   frames of the joint solve
phi_fit_steps          int    200 .. 5000    yes   lin_phi distillation steps
====================== ====== ============== ===== ===============================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..config import ConfigError, load_schema
from ..families import family_declaration
from ..text import plain

__all__ = [
    "SIGNAL_SPACE",
    "ParamSpec",
    "default_space",
    "mutate",
    "mutate_value",
    "resolve_space",
    "slot_rng",
    "space_to_dict",
]

KINDS = ("float", "int", "choice")
#: Attempts at drawing a value different from the old one before a deterministic fallback.
MAX_DRAWS = 20


@dataclass(frozen=True)
class ParamSpec:
    """One mutable parameter.

    ``kind``: ``float``, ``int`` or ``choice``; ``low``/``high``: the range (numbers);
    ``log``: multiplicative steps; ``choices``: the values of a ``choice``; ``zero``: 0 is
    allowed besides ``[low, high]``; ``start``: value when a zero parameter is switched on;
    ``step``: the largest step (decades for log parameters, fraction of the range otherwise);
    ``p_zero``: probability of switching a zero parameter off; ``requires``: (key, value)
    pairs a configuration must have for the parameter to matter (:meth:`applies`).
    """

    name: str
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = field(default_factory=tuple)
    zero: bool = False
    start: float | None = None
    step: float = 0.5
    p_zero: float = 0.1
    requires: tuple = ()

    def applies(self, config: Mapping[str, Any]) -> bool:
        """Whether the parameter matters in ``config`` (every ``requires`` pair holds)."""
        return all(_same(config.get(k), v) for k, v in self.requires)

    def check(self, source: str = "parameter space") -> ParamSpec:
        """Raise :class:`ConfigError` naming the parameter when the declaration is unusable."""
        where = f"{source}: field 'parameter_space.{self.name}'"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "choice":
            if len(self.choices) < 2:
                raise ConfigError(f"{where}: a choice needs at least 2 choices")
            return self
        if self.low is None or self.high is None:
            raise ConfigError(f"{where}: low and high are required for type {self.kind}")
        if not self.low < self.high:
            raise ConfigError(f"{where}: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log-scale parameter needs low > 0, got {self.low}")
        if self.zero and self.start is not None and not self.low <= self.start <= self.high:
            raise ConfigError(f"{where}: start {self.start} is outside [{self.low}, {self.high}]")
        if not self.step > 0:
            raise ConfigError(f"{where}: step must be > 0")
        return self

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this parameter can take."""
        if self.kind == "choice":
            return any(_same(value, c) for c in self.choices)
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        if self.zero and x == 0:
            return True
        return self.low <= x <= self.high and (self.kind != "int" or x == int(x))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log, step=self.step)
            if self.zero:
                out.update(zero=True, start=self.start, p_zero=self.p_zero)
        if self.requires:
            out["requires"] = dict(self.requires)
        return plain(out)


def default_space(family: str = "signal") -> dict[str, ParamSpec]:
    """The default parameter space of a family: its declared ``search_space``
    (:class:`connectome_gnn.families.Family`); ConfigError for an unknown family or one that
    declares no space."""
    where = f"model family {family!r}"
    declared = family_declaration(family, "search_space", source=where)
    return resolve_space(declared, base={}, source=f"{where}: search_space")


def resolve_space(
    overrides: Mapping[str, Mapping | None] | None = None,
    base: Mapping[str, ParamSpec] | None = None,
    restrict: Sequence[str] | None = None,
    source: str = "experiment",
) -> dict[str, ParamSpec]:
    """Apply experiment overrides (``parameter_space``, ``parameters``) to a base space
    (default: :func:`default_space` of the experiment schema's default family, signal).

    ``overrides`` maps a name to ``None`` (remove it) or to spec keys (``type``, ``low``,
    ``high``, ``log``, ``choices``, ``zero``, ``start``, ``step``, ``p_zero``) changing or
    declaring it.  ``restrict`` keeps only the named parameters, in that order.  Every name
    must be a training parameter of ``train.schema.yaml``; errors name ``source`` and the field.
    """
    space = dict(default_space() if base is None else base)
    known = set(load_schema("train")["properties"])
    for name, change in (overrides or {}).items():
        if name not in known:
            raise ConfigError(
                f"{source}: field 'parameter_space.{name}': not a training parameter "
                "(see train.schema.yaml)"
            )
        if change is None:
            space.pop(name, None)
            continue
        kw = {("kind" if k == "type" else k): v for k, v in change.items()}
        if "choices" in kw:
            kw["choices"] = tuple(kw["choices"])
        if "requires" in kw:
            kw["requires"] = tuple(sorted(dict(kw["requires"]).items()))
        if name in space:
            spec = replace(space[name], **kw)
        else:
            spec = ParamSpec(name=name, **kw)
        space[name] = spec.check(source)
    if restrict is not None:
        missing = [n for n in restrict if n not in space]
        if missing:
            raise ConfigError(
                f"{source}: field 'parameters': {', '.join(missing)} not in the parameter space "
                f"({', '.join(space)})"
            )
        space = {n: space[n] for n in restrict}
    if not space:
        raise ConfigError(f"{source}: field 'parameter_space': no parameter left to mutate")
    return space


def space_to_dict(space: Mapping[str, ParamSpec]) -> dict[str, dict]:
    """The space as plain dicts (for ``nodes.yaml`` and reports)."""
    return {name: spec.to_dict() for name, spec in space.items()}


#: Default space of the signal family (seed-004 ranges; see the module docstring).
SIGNAL_SPACE: dict[str, ParamSpec] = default_space("signal")


def slot_rng(seed: int, iteration: int, slot: int) -> np.random.Generator:
    """The generator of one proposal: seeded from (exploration seed, iteration, slot)."""
    return np.random.default_rng([int(seed), int(iteration), int(slot)])


# --------------------------------------------------------------------------------------------
# mutation of one value
# --------------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _round_sig(x: float, digits: int = 2) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits - 1}e}")


def _finish(spec: ParamSpec, x: float) -> float | int:
    """Round (2 significant digits / integer) and clip into [low, high]."""
    x = round(x) if spec.kind == "int" else _round_sig(x)
    x = min(max(x, spec.low), spec.high)
    return int(round(x)) if spec.kind == "int" else float(x)


def _draw(spec: ParamSpec, old: float, rng: np.random.Generator) -> float | int:
    """One candidate value for a numeric parameter currently at ``old`` (in range)."""
    u = rng.uniform(spec.step / 10.0, spec.step)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    # at a bound, go inwards
    if old >= spec.high:
        sign = -1.0
    elif old <= spec.low:
        sign = 1.0
    if spec.log:
        x = old * 10.0 ** (sign * u)
    else:
        x = old + sign * u * (spec.high - spec.low)
    new = _finish(spec, x)
    if spec.kind == "int" and new == old:  # a step that rounds away: move by one
        new = _finish(spec, old + sign)
    return new


def mutate_value(spec: ParamSpec, old: Any, rng: np.random.Generator) -> Any:
    """A new value for ``spec`` different from ``old``, inside the declared range.

    A value outside the range (e.g. a hand-edited configuration) is first clipped into it; a
    missing or 0 value of a ``zero`` parameter is switched on at ``start`` (or ``low``).
    """
    if spec.kind == "choice":
        options = [c for c in spec.choices if not _same(c, old)]
        if not options:
            raise ValueError(f"{spec.name}: no other choice than {old!r}")
        return copy.deepcopy(options[int(rng.integers(len(options)))])

    try:
        x_old = float(old)
    except (TypeError, ValueError):
        x_old = math.nan
    if spec.zero and (math.isnan(x_old) or x_old == 0):
        start = spec.start if spec.start is not None else spec.low
        return _finish(spec, start)
    if spec.zero and rng.random() < spec.p_zero:
        return 0 if spec.kind == "int" else 0.0
    if math.isnan(x_old):
        # no usable old value: the geometric (log) or arithmetic middle of the range
        mid = math.sqrt(spec.low * spec.high) if spec.log else (spec.low + spec.high) / 2
        return _finish(spec, mid)
    if not spec.low <= x_old <= spec.high:
        return _finish(spec, min(max(x_old, spec.low), spec.high))

    for _ in range(MAX_DRAWS):
        new = _draw(spec, x_old, rng)
        if new != x_old:
            return new
    # deterministic fallback: one full step inwards
    direction = -1.0 if x_old >= spec.high else 1.0
    if spec.log:
        new = _finish(spec, x_old * 10.0 ** (direction * spec.step))
    else:
        new = _finish(spec, x_old + direction * spec.step * (spec.high - spec.low))
    if new == x_old:
        new = spec.low if x_old != spec.low else spec.high
    return new


def _mutable(spec: ParamSpec) -> bool:
    if spec.kind == "choice":
        return len(spec.choices) >= 2
    return spec.low is not None and spec.high is not None and spec.low < spec.high


# --------------------------------------------------------------------------------------------
# mutation of a configuration
# --------------------------------------------------------------------------------------------


def mutate(
    config: Mapping[str, Any],
    space: Mapping[str, ParamSpec],
    rng: np.random.Generator,
    n_params: int = 1,
    avoid: Sequence[Mapping[str, Any]] = (),
    prefer_not: Collection[str] = (),
) -> tuple[dict, list[dict]]:
    """Change ``n_params`` (1 or 2) distinct parameters of ``config``.

    Returns ``(new_config, mutation)`` where ``mutation`` is a list of
    ``{"param", "old", "new"}`` (``old`` is None when the parameter was absent).  The new
    configuration always differs from ``config``.  ``avoid``: configurations (e.g. the other
    nodes of the block) that a new configuration should not duplicate; up to
    :data:`MAX_DRAWS` redraws are made, after which a duplicate is accepted.  ``prefer_not``:
    parameters to leave alone while enough others remain (e.g. those the other slots of a batch
    already mutate from the same parent, so that a batch tries different parameters).
    """
    if n_params not in (1, 2):
        raise ValueError(f"n_params must be 1 or 2, got {n_params}")
    names = [n for n, spec in space.items() if _mutable(spec) and spec.applies(config)]
    if not names:
        raise ValueError("the parameter space has no mutable parameter")
    k = min(n_params, len(names))
    fresh = [n for n in names if n not in set(prefer_not)]
    if len(fresh) >= k:
        names = fresh
    best: tuple[dict, list[dict]] | None = None
    for _ in range(MAX_DRAWS):
        picked = sorted(rng.choice(len(names), size=k, replace=False).tolist())
        new = copy.deepcopy(dict(config))
        mutation = []
        for i in picked:
            name = names[i]
            old = config.get(name)
            value = mutate_value(space[name], old, rng)
            new[name] = value
            mutation.append({"param": name, "old": plain(old), "new": plain(value)})
        if best is None:
            best = (new, mutation)
        if not any(_same_config(new, other) for other in avoid):
            return new, mutation
    return best


def _same_config(a: Mapping, b: Mapping) -> bool:
    keys = (set(a) | set(b)) - {"description"}
    return all(
        _same(a.get(k), b.get(k)) if _scalar(a.get(k)) else a.get(k) == b.get(k) for k in keys
    )


def _scalar(x: Any) -> bool:
    return isinstance(x, int | float | bool | np.number) or x is None
