"""SIREN networks and the learned input field (``input: learned``).

A SIREN (Sitzmann et al. 2020) is an MLP with sine activations: layer l computes
sin(omega (W_l h + b_l)).  Its initialisation keeps the pre-activations of every layer
distributed alike: the first layer's weights are uniform in +-1/fan_in (so that omega x spans
about omega / (2 pi) periods over a unit input), the hidden and output layers' uniform in
+-sqrt(6 / fan_in) / omega.  The output layer is linear.

:class:`InputField` maps frame indices to the external input x_i(t) of the neurons that receive
one, in the reference's two forms:

- ``siren_t``: input t / nnr_f_T_period, one output per field unit;
- ``siren_x``: input (t / nnr_f_T_period, x, y) of a unit's position, one output, evaluated at
  every unit.

A *unit* is one value of the field: an input neuron of the signal family, or a column of the
FlyVis eye, whose photoreceptors share one value (as in the simulator).  ``targets`` lists the
neurons that receive input and ``units`` the unit each one reads.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from ..errors import ConfigError

FORMS = ("siren_t", "siren_x")
INPUTS = ("known", "learned")

#: the input keys of the training config and their values when absent (train.schema.yaml)
INPUT_DEFAULTS = {
    "input": "known",
    "input_form": "siren_t",
    "omega_f": 80.0,
    "hidden_dim_nnr_f": 128,
    "n_layers_nnr_f": 3,
    "nnr_f_T_period": 10_000.0,
    "lr_siren": 1.0e-4,
    "field_init": "estimate",
    "field_max_lines": 16,
    "field_line_tol": 1.0e-3,
    "field_fit_steps": 1000,
    "field_fit_lr": 1.0e-4,
    "field_fit_rounds": 100,
}
FIELD_INITS = ("estimate", "none")


def input_settings(cfg: dict) -> dict:
    """The input keys of a training config, defaults filled, checked (errors name the field)."""
    out = {k: cfg.get(k, v) for k, v in INPUT_DEFAULTS.items()}
    if out["input"] not in INPUTS:
        raise ConfigError(f"field 'input': {out['input']!r} is not one of {', '.join(INPUTS)}")
    if out["input_form"] not in FORMS:
        raise ConfigError(
            f"field 'input_form': {out['input_form']!r} is not one of {', '.join(FORMS)}"
        )
    if out["field_init"] not in FIELD_INITS:
        raise ConfigError(
            f"field 'field_init': {out['field_init']!r} is not one of {', '.join(FIELD_INITS)}"
        )
    for key in ("omega_f", "nnr_f_T_period", "lr_siren", "field_line_tol", "field_fit_lr"):
        if not float(out[key]) > 0:
            raise ConfigError(f"field '{key}': must be > 0, got {out[key]}")
    for key in ("hidden_dim_nnr_f", "n_layers_nnr_f", "field_fit_steps", "field_fit_rounds"):
        if int(out[key]) < 1:
            raise ConfigError(f"field '{key}': must be >= 1, got {out[key]}")
    return out


def build_field(
    cfg: dict,
    n_neurons: int,
    units: tuple,
    generator: torch.Generator | None = None,
) -> InputField | None:
    """The input field of a training config (None for a known input).  ``units`` is the
    family's (targets, units, n_units, positions or None), see :class:`InputField`."""
    s = input_settings(cfg)
    if s["input"] != "learned":
        return None
    targets, unit_of, n_units, positions = units
    return InputField(
        s["input_form"],
        n_neurons,
        targets,
        unit_of,
        n_units,
        float(s["nnr_f_T_period"]),
        float(s["omega_f"]),
        int(s["hidden_dim_nnr_f"]),
        int(s["n_layers_nnr_f"]),
        positions,
        generator,
    )


class Siren(nn.Module):
    """in_dim -> out_dim through ``n_layers`` hidden sine layers of width ``hidden``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int,
        n_layers: int,
        omega: float,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if omega <= 0:
            raise ConfigError(f"field 'omega_f': must be > 0, got {omega}")
        if n_layers < 1:
            raise ConfigError(f"field 'n_layers_nnr_f': must be >= 1, got {n_layers}")
        if hidden < 1:
            raise ConfigError(f"field 'hidden_dim_nnr_f': must be >= 1, got {hidden}")
        self.omega = float(omega)
        dims = [in_dim] + [hidden] * n_layers + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                fan_in = layer.in_features
                bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.omega
                layer.weight.uniform_(-bound, bound, generator=generator)
                b = 1.0 / math.sqrt(fan_in)  # torch's default bias range
                layer.bias.uniform_(-b, b, generator=generator)

    def features(self, inp: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations."""
        h = inp
        for layer in self.layers[:-1]:
            h = torch.sin(self.omega * layer(h))
        return h

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.layers[-1](self.features(inp))


class InputField(nn.Module):
    """The learned external input: frame indices (B,) -> x (B, N), zero off the input neurons.

    ``targets`` (M,) are the neurons that receive input, ``units`` (M,) the field unit each
    reads (0..n_units-1), ``positions`` (n_units, 2) the units' places (``siren_x`` only).
    """

    def __init__(
        self,
        form: str,
        n_neurons: int,
        targets: torch.Tensor,
        units: torch.Tensor,
        n_units: int,
        T_period: float,
        omega: float,
        hidden: int,
        n_layers: int,
        positions: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if form not in FORMS:
            raise ConfigError(f"field 'input_form': {form!r} is not one of {', '.join(FORMS)}")
        if T_period <= 0:
            raise ConfigError(f"field 'nnr_f_T_period': must be > 0, got {T_period}")
        if form == "siren_x" and positions is None:
            raise ConfigError(
                "field 'input_form': siren_x needs the positions of the input units, and this "
                "simulation has none (use siren_t, or a moving_pattern input)"
            )
        self.form, self.n_neurons, self.n_units = form, int(n_neurons), int(n_units)
        self.T_period = float(T_period)
        self.register_buffer("targets", torch.as_tensor(targets, dtype=torch.long))
        self.register_buffer("units", torch.as_tensor(units, dtype=torch.long))
        if form == "siren_x":
            self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.float32))
            self.net = Siren(3, 1, hidden, n_layers, omega, generator)
        else:
            self.positions = None
            self.net = Siren(1, self.n_units, hidden, n_layers, omega, generator)

    def unit_values(self, frames: torch.Tensor) -> torch.Tensor:
        """The field at the given frames: (B, n_units)."""
        t = (frames.to(self.targets.device).float() / self.T_period).unsqueeze(-1)
        if self.form == "siren_t":
            return self.net(t)
        b, m = t.shape[0], self.n_units
        inp = torch.cat(
            [t.unsqueeze(1).expand(b, m, 1), self.positions.unsqueeze(0).expand(b, m, 2)], -1
        )
        return self.net(inp).squeeze(-1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """x (B, N) at the given frames: each target neuron gets its unit's value."""
        values = self.unit_values(frames)
        x = values.new_zeros(values.shape[0], self.n_neurons)
        x[:, self.targets] = values[:, self.units]
        return x


class LearnedInput:
    """``x_in[k]`` for the trainer's rollouts when the input is learned: the field at frames k."""

    def __init__(self, field: InputField):
        self.field = field

    def __getitem__(self, k: torch.Tensor) -> torch.Tensor:
        return self.field(torch.as_tensor(k))
