"""Experiment definitions (``experiment.schema.yaml``): validation and resolution.

:func:`load_experiment` validates an experiment (a YAML file or a dict), fills the defaults,
resolves every block's base training configuration (a named file of ``train_config_dir`` or an
inline dict, validated against ``train.schema.yaml``), the score weights (the family's when not
given) and the parameter space.  The resolved experiment is plain data: it is stored in the
header of ``nodes.yaml`` so that an exploration directory is self-contained.

Resolved keys added to the validated experiment:

``blocks[i].n_iter_block``
    the block's own value or the top-level ``n_iter_block``;
``blocks[i].train``
    the full training configuration of the block's root (defaults filled);
``score_weights``
    never null;
``space``
    the resolved parameter space (``{name: {type, low, high, ...}}``);
``pruning``
    null, or the pruning settings with every default filled (:mod:`.pruning`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..aggregate import scores
from ..config import ConfigError, format_sparsity, load_train_config, load_yaml, validate
from .mutate import ParamSpec, default_space, resolve_space, space_to_dict
from .pruning import resolve_settings

__all__ = ["family_score_weights", "load_experiment", "space_of"]


def family_score_weights(family: str) -> dict[str, float]:
    """The exploration score weights of a model family (its declared ``score_weights``)."""
    return scores.family_score_weights(family, source="experiment: field 'family'")


def _base_config(value: Any, train_dir: Path, source: str, field: str) -> dict:
    if isinstance(value, str):
        path = train_dir / f"{value}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"{source}: field '{field}': no training configuration {value!r} ({path} missing)"
            )
        return load_train_config(path)
    return validate(value, "train", source=f"{source}: {field}")


def load_experiment(
    experiment: str | os.PathLike | Mapping[str, Any], root: str | os.PathLike = "."
) -> dict:
    """Validate and resolve an experiment (path of a YAML file, or a mapping).

    ``root``: directory that a relative ``train_config_dir`` is relative to.  Errors are
    :class:`ConfigError` naming the file (or ``experiment``) and the field.  A mapping that was
    already resolved (it has ``space`` and per-block ``train``) is accepted again unchanged.
    """
    if isinstance(experiment, Mapping):
        source = "experiment"
        raw = copy.deepcopy(dict(experiment))
    else:
        source = str(experiment)
        raw = load_yaml(experiment)
    resolved_space = raw.pop("space", None) if isinstance(raw, dict) else None
    trains = []
    if isinstance(raw, dict) and isinstance(raw.get("blocks"), list):
        for block in raw["blocks"]:
            trains.append(block.pop("train", None) if isinstance(block, dict) else None)
    exp = validate(raw, "experiment", source=source)

    train_dir = Path(exp["train_config_dir"])
    if not train_dir.is_absolute():
        train_dir = Path(root) / train_dir
    top_base = None
    for i, block in enumerate(exp["blocks"]):
        block.setdefault("n_iter_block", exp["n_iter_block"])
        block["sparsity"] = float(block["sparsity"])
        format_sparsity(block["sparsity"])
        if trains[i] is not None:
            block["train"] = validate(trains[i], "train", source=f"{source}: blocks[{i}].train")
        elif "base_config" in block:
            block["train"] = _base_config(
                block["base_config"], train_dir, source, f"blocks[{i}].base_config"
            )
        else:
            if top_base is None:
                top_base = _base_config(exp["base_config"], train_dir, source, "base_config")
            block["train"] = copy.deepcopy(top_base)

    if exp["score_weights"] is None:
        exp["score_weights"] = family_score_weights(exp["family"])
    exp["score_weights"] = {str(k): float(v) for k, v in exp["score_weights"].items()}

    if resolved_space is not None:
        space = resolve_space(resolved_space, base={}, source=source)
    else:
        space = resolve_space(
            exp["parameter_space"],
            base=default_space(exp["family"]),
            restrict=exp["parameters"],
            source=source,
        )
    exp["space"] = space_to_dict(space)
    exp["pruning"] = resolve_settings(exp.get("pruning"), source=source)
    return exp


def space_of(experiment: Mapping[str, Any]) -> dict[str, ParamSpec]:
    """The parameter space of a resolved experiment."""
    return resolve_space(experiment["space"], base={}, source="experiment")
