"""One ground-truth FlyVis parameter set (:class:`FlyVisParams`), model ids and seeds.

Also the constants of the generative model that both the draw (:mod:`.params`) and the
calibration (:mod:`.acceptance`) use, and the rule that ties V_rest and tau to the synaptic
weights (:func:`rest_and_tau`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .connectome import Connectome
from .dynamics import FlyVisDynamics
from .spectral import TypeStructure, net_input

#: root of every parameter seed: SeedSequence([PARAM_SEED_ROOT, model index, attempt])
PARAM_SEED_ROOT = 0xF17_5EED
TAU_MAX = 0.3
EULER_DT = 0.02
W_SMALL = 0.01
RHO_EXC_RANGE = (0.8, 0.95)
V_REST_CLIP = (-1.5, 3.0)
REBALANCED_MAGNITUDE_MAX = 4.0  # cap on a pair's mean |w| after the inhibitory re-balancing
GREY_INPUT = 0.5


def parse_model_id(model_id: str | int) -> int:
    """``'flyvis_049'``, ``'049'``, ``49`` -> 49."""
    if isinstance(model_id, bool):
        raise ValueError(f"invalid FlyVis model id {model_id!r}")
    if isinstance(model_id, int | np.integer):
        if model_id < 0:
            raise ValueError(f"invalid FlyVis model id {model_id!r} (must be >= 0)")
        return int(model_id)
    m = re.fullmatch(r"(?:flyvis_)?(\d{1,9})", str(model_id).strip())
    if not m:
        raise ValueError(f"invalid FlyVis model id {model_id!r} (expected e.g. 'flyvis_049')")
    return int(m.group(1))


def model_name(index: int) -> str:
    return f"flyvis_{int(index):03d}"


def param_seed(index: int, attempt: int = 0) -> int:
    """The integer seed of attempt ``attempt`` of model ``index`` (63-bit SeedSequence draw)."""
    ss = np.random.SeedSequence([PARAM_SEED_ROOT, int(index), int(attempt)])
    return int(ss.generate_state(1, np.uint64)[0]) >> 1


@dataclass
class FlyVisParams:
    """One ground-truth parameter set: per-type tau and V_rest, per-pair synaptic strength."""

    model_id: str
    index: int
    attempt: int
    seed: int
    tau: np.ndarray  # (n_types,) seconds
    V_rest: np.ndarray  # (n_types,)
    strength: np.ndarray  # (n_pairs,) >= 0
    info: dict = field(default_factory=dict)

    def edge_weights(self, con: Connectome) -> np.ndarray:
        """w per edge of ``con``: sign * n_syn * strength (float32)."""
        w = con.edge_sign.astype(np.float64) * con.edge_n_syn * self.strength[con.edge_pair]
        return w.astype(np.float32)

    def node_tau(self, con: Connectome) -> np.ndarray:
        return self.tau[con.node_type].astype(np.float32)

    def node_V_rest(self, con: Connectome) -> np.ndarray:
        return self.V_rest[con.node_type].astype(np.float32)

    def dynamics(self, con: Connectome, dt: float = 0.02):
        """The :class:`~.dynamics.FlyVisDynamics` of this parameter set on ``con``."""
        return FlyVisDynamics(
            con.edge_source,
            con.edge_target,
            self.edge_weights(con),
            self.node_tau(con),
            self.node_V_rest(con),
            dt=dt,
        )

    def summary(self) -> dict:
        """JSON-friendly description (no per-type or per-pair arrays)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("tau", "V_rest", "strength")}
        d["tau_range"] = [float(self.tau.min()), float(self.tau.max())]
        d["V_rest_range"] = [float(self.V_rest.min()), float(self.V_rest.max())]
        d["n_pruned_pairs"] = int((self.strength == 0).sum())
        return d

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "model_id": np.array(self.model_id),
            "index": np.int64(self.index),
            "attempt": np.int64(self.attempt),
            "seed": np.int64(self.seed),
            "tau": self.tau,
            "V_rest": self.V_rest,
            "strength": self.strength,
            "info": np.array(json.dumps(self.info)),
        }

    @classmethod
    def from_arrays(cls, a: dict) -> FlyVisParams:
        return cls(
            model_id=str(a["model_id"]),
            index=int(a["index"]),
            attempt=int(a["attempt"]),
            seed=int(a["seed"]),
            tau=np.asarray(a["tau"], dtype=np.float64),
            V_rest=np.asarray(a["V_rest"], dtype=np.float64),
            strength=np.asarray(a["strength"], dtype=np.float64),
            info=json.loads(str(a["info"])),
        )


def rest_and_tau(
    st: TypeStructure, mags: np.ndarray, v_star: np.ndarray, tau: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V_rest, tau, B) per type for per-pair magnitudes ``mags``.

    ``V_rest_t = V*_t - (net input at V*) - x_grey`` (x_grey = GREY_INPUT on R1-R8), clipped to
    V_REST_CLIP, makes ``v_star`` the grey steady state on the infinite lattice; ``tau`` is raised
    where needed to ``EULER_DT (1 + B_t) / 2`` (at most TAU_MAX), B_t the total input |w| of a
    neuron of type t, so that explicit Euler cannot flip the sign of a perturbation every step.
    """
    x_grey = np.where(st.photoreceptor, GREY_INPUT, 0.0)
    V_rest = np.clip(v_star - net_input(st, mags, v_star) - x_grey, *V_REST_CLIP)
    abs_in = np.bincount(st.pair_target, weights=mags * st.pair_fanin, minlength=st.n_types)
    tau = np.minimum(np.maximum(tau, EULER_DT * (1.0 + abs_in) / 2.0), TAU_MAX)
    return V_rest, tau, abs_in
