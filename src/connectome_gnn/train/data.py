"""The frames a training sees: activity, targets and inputs on the training device."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..simulate.data import Simulation


def rollout_pred(model, u, du, x_in, k, cfg: dict, dt: float):
    """Prediction and target of one batch starting at frames ``k``: du/dt (the default) or, with
    recurrent_training, the Euler rollout over time_step frames as a mean derivative."""
    ub = u[k]
    if not cfg["recurrent_training"]:
        return (model(ub) if x_in is None else model(ub, x_in[k])), du[k]
    steps = int(cfg["time_step"])
    v = ub
    for s in range(steps):
        v = v + dt * (model(v) if x_in is None else model(v, x_in[k + s]))
    return (v - ub) / (dt * steps), (u[k + steps] - ub) / (dt * steps)


class TrainingData:
    """The training frames of a simulation (u, du and the input x when there is one).

    ``n_starts``: the frames a batch may start at (a recurrent rollout of time_step frames must
    end inside the training frames); ``xnorm``: 1.5 x the std of u, the regularisers' scale.
    """

    def __init__(self, sim: Simulation, cfg: dict, device: torch.device):
        self.n_train = sim.n_train_frames
        self.dt = sim.dt
        self.n_starts = self.n_train - (int(cfg["time_step"]) if cfg["recurrent_training"] else 0)
        if self.n_starts < 1:
            raise ConfigError(
                f"field 'time_step': {cfg['time_step']} is not shorter than the "
                f"{self.n_train} training frames"
            )
        self.u = torch.from_numpy(sim.read("u", 0, self.n_train)).to(device)
        self.du = torch.from_numpy(sim.read("du", 0, self.n_train)).to(device)
        x_in = sim.read_input(0, self.n_train)
        self.x_in = None if x_in is None else torch.from_numpy(x_in).to(device)
        self.xnorm = float(1.5 * self.u.std())
        self.device = device

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Start frames of one batch, uniformly at random."""
        return torch.randint(self.n_starts, (batch,), generator=generator).to(self.device)

    def batch(self, model, k: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's prediction and the target of the batch starting at ``k``."""
        return rollout_pred(model, self.u, self.du, self.x_in, k, cfg, self.dt)
