"""FlyVis: the fly visual system connectome (flyvis 1.2.0 data, MIT) as a second simulator.

Modules (import what you need; ``connectome``, ``spectral`` and ``stimuli`` do not import torch):

- :mod:`.connectome`  hexagonal-lattice network of an extent (:func:`load_connectome`, cached)
- :mod:`.spectral`    type structure and spectral maths on the infinite lattice (no torch)
- :mod:`.stimuli`     procedural visual stimuli on the lattice (:class:`StimulusSequence`)
- :mod:`.dynamics`    the true dynamics as a torch module (:class:`FlyVisDynamics`)
- :mod:`.paramset`    one ground-truth parameter set (:class:`FlyVisParams`), model ids, seeds
- :mod:`.statistics`  weight and activity statistics
- :mod:`.integrate`   the dynamics under a luminance stream (:func:`integrate_chunks`)
- :mod:`.acceptance`  check simulation and calibration of a drawn parameter set
- :mod:`.params`      seeded ground-truth parameter sets per model id (:func:`make_params`)
- :mod:`.simulate`    :func:`simulate_flyvis` writes a standard simulation directory

Each module imports only the ones listed above it.
"""

from __future__ import annotations

_EXPORTS = {
    "Connectome": "connectome",
    "build_connectome": "connectome",
    "load_connectome": "connectome",
    "connectome_json_path": "connectome",
    "FlyVisParams": "paramset",
    "make_params": "params",
    "draw_params": "params",
    "parse_model_id": "paramset",
    "activity_svd_rank": "statistics",
    "weight_statistics": "statistics",
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
