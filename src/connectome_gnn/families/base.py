"""The interface every model family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


def edge_range(meta: dict, knot_scale: float = 1.0) -> tuple[float, float]:
    """(u_max, scale) of a spline edge function: 1.2 x the largest |u| of the simulation and
    ``knot_scale`` x the std of u (knots dense within it), from simulation.json."""
    u_max = float(meta.get("activity_max_abs") or 10.0)
    scale = knot_scale * float(meta.get("activity_std") or 1.0)
    return 1.2 * max(u_max, 1e-3), max(scale, 1e-6)


class Family(ABC):
    """One kind of circuit: simulator + learned model + metric readouts + schema.

    Attributes
    ----------
    name: the family name used in configs (``models.<name>.family``).
    model_schema: name of the JSON schema (in ``connectome_gnn/schemas``) of a simulator instance.

    The declarations below are read by the stages that never build a model (aggregate,
    explore) through :func:`connectome_gnn.families.family_declaration`, from the class body
    and without importing the family module (so without torch): write them at the top of the
    class body as literals (numbers, strings, tuples, dicts).

    metric_names: the scalar metrics the family adds to ``metrics.json`` besides the generic
        ones of the analysis (connectivity_R2, cluster_accuracy, test_R2, ...), that the
        summaries report (replicate statistics, numeric columns of exploration tables).
    headline_metrics: of ``metric_names``, those the markdown summaries show (their values
        must be numbers or null), placed after cluster_accuracy.
    pareto_metrics: of ``metric_names``, those maximised by the Pareto front besides
        connectivity_R2, cluster_accuracy and test_R2 (also the default metrics of the
        exploration tables).
    score_weights: ``{metric: weight}`` of a run's score, ``sum(weight * metric)``: the best
        run per (model, sparsity) of the summaries and the node score of an exploration.
    search_space: the default parameter space of an exploration, ``{training parameter:
        spec}`` with the keys of an experiment's ``parameter_space`` (``type``, ``low``,
        ``high``, ``log``, ``choices``, ``zero``, ``start``, ``step``, ``p_zero``).
    """

    name: str
    model_schema: str
    metric_names: tuple[str, ...] = ()
    headline_metrics: tuple[str, ...] = ()
    pareto_metrics: tuple[str, ...] = ()
    score_weights: dict[str, float]  # each family declares its own
    search_space: dict[str, dict[str, Any]]  # each family declares its own
    #: the filling factors a family can simulate (None: any in (0, 1])
    sparsity_options: tuple[float, ...] | None = None
    #: per-neuron parameters read off the learned model: the readouts hold ``{name}_true`` and
    #: ``{name}_learned`` for each, and the analysis reports ``{name}_R2`` / ``{name}_slope``
    neuron_parameters: tuple[str, ...] = ()
    #: other readings of the same parameters (readouts ``{name}_{variant}_learned``), reported
    #: as ``{name}_R2_{variant}`` / ``{name}_slope_{variant}``
    parameter_variants: tuple[str, ...] = ()
    #: neuron masks in the readouts (e.g. the neurons whose activity pins a parameter): the
    #: analysis also reports ``{name}_R2_{mask}`` and the fraction ``{mask}_fraction``
    neuron_subsets: tuple[str, ...] = ()

    def check_model(self, model_cfg: dict, source: str) -> None:  # noqa: B027 - optional hook
        """Cross-field checks a JSON schema cannot express; raise ConfigError."""

    @abstractmethod
    def simulate(self, model_cfg: dict, sparsity: float, seed: int, out_dir: Path) -> dict:
        """Write a simulation directory (see :mod:`connectome_gnn.simulate`); return its metadata."""

    @abstractmethod
    def true_dynamics(self, sim: Any):
        """A torch module ``f(u[B, N]) -> du/dt[B, N]`` of the ground-truth simulator."""

    @abstractmethod
    def build_model(self, sim: Any, train_cfg: dict):
        """The learned GNN for this family (a torch module ``f(u[B, N]) -> du/dt[B, N]``),
        with its input field when the config learns the input (:meth:`attach_field`)."""

    def input_units(self, sim: Any) -> tuple:
        """Where a simulation's external input enters: (targets (M,) neurons, units (M,) the
        field unit each reads, n_units, positions (n_units, 2) or None); see
        :class:`connectome_gnn.models.siren.InputField`."""
        from ..config import ConfigError

        raise ConfigError(f"field 'input': learned, but the {self.name} family has no input")

    def attach_field(self, model, sim: Any, train_cfg: dict, generator=None):
        """``model`` with ``model.field`` set: the learned input field (input: learned) or
        None.  Built after the model, so that a known-input model draws the same numbers."""
        from ..models.siren import build_field, input_settings

        units = self.input_units(sim) if input_settings(train_cfg)["input"] == "learned" else None
        model.field = build_field(train_cfg, sim.n_neurons, units, generator)
        return model

    @abstractmethod
    def readouts(self, model, sim: Any) -> dict:
        """Quantities the analysis compares with the ground truth (see analysis.run)."""
