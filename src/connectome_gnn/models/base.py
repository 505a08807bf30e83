"""The contract every learned GNN of a family implements (as MessagePassing is for a PyG layer).

A model predicts du_i/dt from the activity u (frames x N) with three learned parts:

- ``W``: the connectivity, a parameter (dense N x N or one weight per known edge), possibly held
  in a basis; :meth:`effective_W` gives the weights the messages use and the regularisers act on;
- ``lin_edge``: the edge function; :meth:`edge` applies it to every sender's activity, and
  :meth:`message` sums W-weighted edge values per receiver;
- ``lin_phi`` with the embeddings ``a`` (N x embedding_dim): the update; :meth:`phi` evaluates it.

What the trainer and the regularisers ask of a model, and nothing else:

- :meth:`parameter_groups`: the optimizer groups ``W`` / ``emb`` / ``mlp`` (learning rates
  ``lr_W`` / ``lr_emb`` / ``lr``, see :data:`LR_KEYS`), and ``field`` (``lr_siren``) when the
  model learns its input (``field``, a :class:`~.siren.InputField`, else None);
- :attr:`has_basis` and :meth:`refresh_basis`: the ``W_basis: eigen`` re-alignment;
- :meth:`edge_norm_target`: the value ``coeff_edge_norm`` pins lin_edge(2 xnorm) to;
- :meth:`effective_W`, :meth:`edge`, :meth:`phi`, :meth:`message` and ``forward(u[, x])``;
- :meth:`set_effective_W` (models whose W the solver of :mod:`connectome_gnn.train.solver`
  sets).

A new family's model subclasses :class:`ConnectomeGNN`, builds ``W``, ``a``, ``lin_edge`` and
``lin_phi`` in its constructor (taking the shared keyword arguments of :data:`GNN_KEYS` from the
training config) and implements the abstract methods.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

#: constructor arguments every family's GNN takes from the training config (train schema)
GNN_KEYS = (
    "embedding_dim",
    "hidden_dim",
    "n_layers",
    "hidden_dim_update",
    "n_layers_update",
    "lin_edge_positive",
    "W_init_std",
    "embedding_init",
    "W_basis",
)
#: newer constructor arguments with their defaults (absent from older configs, whose training
#: identity must not change: see train.schema.yaml)
GNN_OPTIONAL = {"lin_edge_form": "mlp", "lin_edge_knots": 96, "lin_phi_form": "mlp"}

W_BASES = ("standard", "eigen")
EMBEDDING_INITS = ("ones", "randn", "activity")


def gnn_kwargs(cfg: dict) -> dict:
    """Constructor arguments shared by the GNNs, from a training config (train schema)."""
    return {k: cfg[k] for k in GNN_KEYS} | {k: cfg.get(k, v) for k, v in GNN_OPTIONAL.items()}


class ConnectomeGNN(nn.Module, metaclass=ABCMeta):
    """Base class of the learned models; see the module docstring for the contract."""

    #: optimizer group -> training-config key of its learning rate
    LR_KEYS = {"W": "lr_W", "emb": "lr_emb", "mlp": "lr", "field": "lr_siren"}
    #: coeff_edge_norm pins lin_edge(2 xnorm) to 2 xnorm (True: a rectifying edge, FlyVis) or 1
    edge_norm_to_input: bool = False
    #: how the W solver (W_solve) treats the model: "shared" (a dense W whose receivers share one
    #: Gram matrix of the edge values, train/solver.py) or "per_receiver" (one weight per known
    #: edge, a small problem per receiver, train/receiver_solver.py)
    W_solver: str = "shared"

    W: nn.Parameter
    a: nn.Parameter
    lin_edge: nn.Module
    lin_phi: nn.Module
    n_neurons: int

    def __init__(self) -> None:
        super().__init__()
        #: the learned input field (input: learned), attached by the family after construction
        self.field: nn.Module | None = None

    @staticmethod
    def check_basis(W_basis: str) -> None:
        if W_basis not in W_BASES:
            raise ValueError(f"unknown W_basis {W_basis!r} (one of {', '.join(W_BASES)})")

    @staticmethod
    def initial_embedding(
        n_neurons: int, dim: int, init: str, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Embeddings at the start: all ones, with N(0, 0.1) noise for ``randn``.  (``activity``
        starts as ones too; the trainer replaces it from activity statistics on a fresh start.)"""
        a = torch.ones(n_neurons, dim)
        if init == "randn":
            a = a + 0.1 * torch.randn(n_neurons, dim, generator=generator)
        return a

    @classmethod
    def from_config(cls, *structure, cfg: dict, generator: torch.Generator | None = None, **extra):
        """The model for a training config; ``structure`` are the family's positional arguments
        (e.g. the number of neurons, or the connectome's edge lists), ``extra`` what the family
        takes from the simulation (e.g. the activity range of a spline edge function)."""
        return cls(*structure, **gnn_kwargs(cfg), **extra, generator=generator)

    # -- what the trainer asks

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The optimizer groups (keys of :data:`LR_KEYS`), each in parameter order."""
        groups: dict[str, list[nn.Parameter]] = {"W": [], "emb": [], "mlp": [], "field": []}
        field = set() if self.field is None else {id(p) for p in self.field.parameters()}
        for param in self.parameters():
            if id(param) in field:
                groups["field"].append(param)
            elif param is self.W:
                groups["W"].append(param)
            elif param is self.a:
                groups["emb"].append(param)
            else:
                groups["mlp"].append(param)
        return groups

    @property
    def has_basis(self) -> bool:
        """Whether W is held in a basis that :meth:`refresh_basis` re-aligns (W_basis: eigen)."""
        return getattr(self, "W_basis", None) is not None

    def refresh_basis(
        self,
        optimizer: torch.optim.Optimizer,
        u: torch.Tensor,
        n_frames: int,
        generator: torch.Generator,
    ) -> None:  # noqa: B027 - a no-op for models without a basis
        """Re-align the W basis with the activity ``u`` (frames x N); no-op without a basis."""

    def edge_norm_target(self, xnorm: float) -> float:
        """The value coeff_edge_norm pins lin_edge(2 xnorm) to."""
        return 2.0 * xnorm if self.edge_norm_to_input else 1.0

    # -- the model function

    @abstractmethod
    def effective_W(self) -> torch.Tensor:
        """The weights the messages use (regularisers act on these)."""

    def set_effective_W(self, W: torch.Tensor) -> None:
        """Set the parameters so that :meth:`effective_W` returns ``W`` (the W solver's
        result); the inverse of :meth:`effective_W`."""
        raise NotImplementedError(f"{type(self).__name__} cannot take a solved W")

    @abstractmethod
    def edge(self, u: torch.Tensor) -> torch.Tensor:
        """lin_edge of every sender, for activity of shape (B, N); same shape out."""

    @abstractmethod
    def message(self, e: torch.Tensor) -> torch.Tensor:
        """Per receiver, the W-weighted sum of the edge values ``e`` (B, N) of its senders."""

    @abstractmethod
    def phi(self, u: torch.Tensor, *args: torch.Tensor | None) -> torch.Tensor:
        """lin_phi with the embeddings for activity (B, N); the family's other inputs
        (message, external input) default to zero."""
