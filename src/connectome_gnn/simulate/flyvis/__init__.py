"""FlyVis: the fly visual system connectome (flyvis 1.2.0 data, MIT) as a second simulator.

Modules (import what you need; only ``simulate`` and ``dynamics`` import torch):

- :mod:`.connectome`  hexagonal-lattice network of an extent (:func:`load_connectome`, cached)
- :mod:`.params`      seeded ground-truth parameter sets per model id (:func:`make_params`)
- :mod:`.stimuli`     procedural visual stimuli on the lattice (:class:`StimulusSequence`)
- :mod:`.dynamics`    the true dynamics as a torch module (:class:`FlyVisDynamics`)
- :mod:`.simulate`    :func:`simulate_flyvis` writes a standard simulation directory
"""

from __future__ import annotations

_EXPORTS = {
    "Connectome": "connectome",
    "build_connectome": "connectome",
    "load_connectome": "connectome",
    "connectome_json_path": "connectome",
    "FlyVisParams": "params",
    "make_params": "params",
    "draw_params": "params",
    "parse_model_id": "params",
    "activity_svd_rank": "params",
    "weight_statistics": "params",
    "StimulusSequence": "stimuli",
    "photoreceptor_input": "stimuli",
    "FlyVisDynamics": "dynamics",
    "simulate_flyvis": "simulate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
