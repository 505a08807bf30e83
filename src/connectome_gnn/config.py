"""Loading and validating YAML configuration with JSON schemas.

Schemas live in ``connectome_gnn/schemas`` (``config/schema`` in the repository points there).
Validation fills defaults from the schema and turns the first violation into a
:class:`ConfigError` that names the file and the offending field, e.g.
``config/train/fast.yaml: field 'lr_W': -1 is less than or equal to the minimum of 0``.
"""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError  # noqa: F401 - re-exported
from .layout import format_sparsity  # noqa: F401 - re-exported

SCHEMA_DIR = Path(__file__).parent / "schemas"


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with ``yaml.safe_load``; errors name the file (and line for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        with path.open() as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None


@cache
def load_schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(f"no schema named {name!r} ({path} missing)")
    with path.open() as fh:
        return yaml.safe_load(fh)


def _extend_with_default(validator_class):
    """A validator that fills `default` values into objects before validating them."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema and prop not in instance:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _extend_with_default(jsonschema.Draft202012Validator)


def _field_name(path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<top level>"


def _reject_non_finite(value: Any, path: list) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise jsonschema.ValidationError(f"{value} is not a finite number", path=path)
    if isinstance(value, dict):
        for key, sub in value.items():
            _reject_non_finite(sub, [*path, key])
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _reject_non_finite(sub, [*path, i])


def validate(instance: Any, schema: str | dict, source: str = "config") -> dict:
    """Validate ``instance`` against a schema (by name or dict) and return a copy with defaults.

    Raises :class:`ConfigError` naming ``source`` and the offending field.
    """
    if instance is None:
        instance = {}
    if not isinstance(instance, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(instance).__name__}"
        )
    schema_dict = load_schema(schema) if isinstance(schema, str) else schema
    filled = copy.deepcopy(instance)
    try:
        _reject_non_finite(filled, [])
        errors = sorted(
            _Validator(schema_dict).iter_errors(filled),
            key=lambda e: (len(e.path), list(map(str, e.path))),
        )
    except jsonschema.ValidationError as exc:
        errors = [exc]
    if errors:
        err = errors[0]
        message = err.message
        if err.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown key")
        raise ConfigError(f"{source}: field '{_field_name(err.absolute_path)}': {message}")
    return filled


def load_train_config(path: str | Path) -> dict:
    """Load and validate one named training configuration (defaults filled)."""
    return validate(load_yaml(path), "train", source=str(path))
