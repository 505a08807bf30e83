"""Model-family plug-ins.

A family bundles, for one kind of circuit, the simulator, the learned GNN, the quantities the
analysis reads off the learned model, and its config schema.  Stages look families up by name
here; adding a family (e.g. FlyVis) means writing its module and one line in ``_REGISTRY``.
"""

from __future__ import annotations

from importlib import import_module

from ..config import ConfigError
from .base import Family

# family name -> "module:attribute" (imported lazily so that light stages stay light)
_REGISTRY: dict[str, str] = {
    "signal": "connectome_gnn.families.signal:SignalFamily",
    "flyvis": "connectome_gnn.families.flyvis:FlyVisFamily",
}


def available_families() -> list[str]:
    return sorted(_REGISTRY)


def get_family(name: str, source: str = "family") -> Family:
    if name not in _REGISTRY:
        raise ConfigError(
            f"{source}: unknown model family {name!r} (available: {', '.join(available_families())})"
        )
    module_name, attr = _REGISTRY[name].split(":")
    return getattr(import_module(module_name), attr)()


__all__ = ["Family", "available_families", "get_family"]
