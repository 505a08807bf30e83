"""The ``optuna-tpe`` proposer: configurations drawn by Optuna's TPE sampler (ask/tell).

Beside UCB/PUCT (:mod:`.ucb`), ``form: optuna-tpe`` lets Optuna's TPE sampler propose the
configurations of a block over the same declared parameter space (the family's
``search_space`` with the experiment's changes): a ``float``/``int`` parameter is
``suggest_float``/``suggest_int`` on ``[low, high]`` (log scale when ``log``), a ``choice``
``suggest_categorical``, and a ``zero`` parameter adds a categorical ``<name>__on`` (off = 0).
Floats are rounded to 2 significant digits as in the mutations.  Each node is the block's root
configuration with the drawn values; its parent is the block's root, its mutation the
difference to it, its ``trial`` the Optuna trial number.  The first batch of a block starts
with the root itself, as with UCB (it is not a trial).

One study per block (``<name>_block<b>``, maximised), stored in ``optuna.journal`` in the
exploration directory (Optuna's JournalStorage with a file backend).  Resuming is exact:

* before proposing, every finished node whose trial is still running in the journal is told
  (ok: its score; pruned: ``PRUNED``; failed: ``FAIL``), so results recorded just before a
  crash are not lost;
* trials asked but never recorded as nodes (a crash between ask and saving ``nodes.yaml``)
  are reused, lowest number first, before any new trial is asked;
* the sampler of trial ``t`` is seeded with ``(seed, block, t)``, so the same journal gives
  the same proposal whether or not the process was restarted in between.

The same tables come out as with UCB (the ``ucb_scores`` table shows the UCB formula for
information).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..layout import OPTUNA_JOURNAL
from .mutate import ParamSpec, _finish
from .node import config_diff

__all__ = ["open_study", "sync_study", "tpe_configs"]

ZERO_FLAG = "__on"


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(directory: Path, name: str, block: int):
    """The block's study in ``<directory>/optuna.journal`` (created when missing)."""
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(Path(directory) / OPTUNA_JOURNAL)))
    return optuna.create_study(
        study_name=f"{name}_block{block}",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
    )


def sync_study(study, nodes) -> int:
    """Tell the study the results of finished nodes whose trial is still running; returns
    how many were told."""
    from optuna.trial import TrialState

    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    told = 0
    for node in nodes:
        if node.trial is None or node.trial not in running or not node.finished:
            continue
        if node.status == "ok" and node.score is not None and math.isfinite(node.score):
            study.tell(node.trial, float(node.score))
        elif node.status == "pruned":
            study.tell(node.trial, state=TrialState.PRUNED)
        else:
            study.tell(node.trial, state=TrialState.FAIL)
        told += 1
    return told


def _sample(trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.kind == "choice":
            values[name] = trial.suggest_categorical(name, list(spec.choices))
            continue
        if spec.zero and not trial.suggest_categorical(name + ZERO_FLAG, [True, False]):
            values[name] = 0 if spec.kind == "int" else 0.0
            continue
        if spec.kind == "int":
            values[name] = int(trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log))
        else:
            values[name] = _finish(
                spec, trial.suggest_float(name, spec.low, spec.high, log=spec.log)
            )
    return values


def _from_params(params: Mapping[str, Any], space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.kind != "choice" and spec.zero and not params.get(name + ZERO_FLAG, True):
            values[name] = 0 if spec.kind == "int" else 0.0
        elif name in params:
            v = params[name]
            values[name] = v if spec.kind == "choice" else _finish(spec, float(v))
    return values


def tpe_configs(
    directory: Path,
    name: str,
    block: int,
    nodes,
    root_config: Mapping[str, Any],
    space: Mapping[str, ParamSpec],
    k: int,
    seed: int,
    startup_trials: int,
) -> list[tuple[dict, list[dict], int]]:
    """``k`` proposals ``(config, mutation vs root, trial number)`` for ``block``; parameters
    that do not apply to the root configuration (``requires``) are not sampled."""
    space = {n: spec for n, spec in space.items() if spec.applies(root_config)}
    optuna = _optuna()
    from optuna.trial import TrialState

    study = open_study(directory, name, block)
    sync_study(study, nodes)
    used = {n.trial for n in nodes if n.trial is not None}
    orphans = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.number not in used
    ]
    out = []
    for frozen in sorted(orphans, key=lambda t: t.number)[:k]:
        values = _from_params(frozen.params, space)
        out.append((values, frozen.number))
    while len(out) < k:
        number = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(
            seed=int(seed) * 1_000_003 + int(block) * 10_007 + number,
            n_startup_trials=int(startup_trials),
            constant_liar=True,
        )
        trial = study.ask()
        out.append((_sample(trial, space), trial.number))
    proposals = []
    for values, number in out:
        config = {**dict(root_config), **values}
        proposals.append((config, config_diff(root_config, config), number))
    return proposals
