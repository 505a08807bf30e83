"""The workflow configuration (config/config.yaml): the grid and the simulator instances, each
validated by its family's schema and checks.  It lives with the families because validating a
model needs its family; :mod:`connectome_gnn.config` below it knows only YAML and schemas."""

from __future__ import annotations

from ..config import validate
from ..errors import ConfigError
from . import get_family


def load_workflow_config(config: dict, source: str = "config") -> dict:
    """Validate the top-level workflow config and every model it defines (by family schema)."""
    cfg = validate(config, "config", source=source)
    for name in cfg["grid"]["model"]:
        if name not in cfg["models"]:
            raise ConfigError(
                f"{source}: field 'grid.model': {name!r} is not defined under 'models' "
                f"(defined: {', '.join(sorted(cfg['models']))})"
            )
    for name, model in cfg["models"].items():
        family = get_family(model["family"], source=f"{source}: field 'models.{name}.family'")
        cfg["models"][name] = validate(
            model, family.model_schema, source=f"{source}: models.{name}"
        )
        family.check_model(cfg["models"][name], source=f"{source}: models.{name}")
    for name in cfg["grid"]["model"]:
        family = get_family(cfg["models"][name]["family"])
        allowed = family.sparsity_options
        bad = [s for s in cfg["grid"]["sparsity"] if allowed and float(s) not in allowed]
        if bad:
            raise ConfigError(
                f"{source}: field 'grid.sparsity': model {name!r} (family {family.name}) can only "
                f"be simulated with filling factor(s) {list(allowed)}, not {bad}; put it in a "
                f"grid of its own (e.g. a second config file)"
            )
    return cfg
