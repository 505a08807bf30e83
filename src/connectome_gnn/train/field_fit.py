"""The W solver with an unknown input: find the input by a line-spectrum pursuit, then fit the
input field (a SIREN) to it.

With a learned input (``input: learned``) the signal model is
du_i = lin_phi(u_i, a_i) + sum_j W_ij lin_edge(u_j) + x_i(t), with x_i(t) on the input neurons
only.  Without a prior on x this is not identifiable: the network's activity is itself a smooth
function of time, so any x' = x - sum_j dW_ij lin_edge(u_j) explains du as well, and a flexible
field fitted to the residual of a W solve (alternating the two) drifts to such a wrong x'
(measured: field_R2 ~0 at N = 200).  A stimulus that is a sum of a few sinusoids is identified:
with its frequencies known, x_i = Phi(t) gamma_i is one more block of the linear solve, and the
joint least squares of [E, C_i, Phi] recovers W, the per-neuron corrections and gamma_i exactly.

:func:`pursue_lines` finds the frequencies (``field_init: estimate``): greedy orthogonal
matching pursuit over sinusoids shared by all input neurons, each with its own amplitude and
phase per neuron.  A periodogram of what the joint solve leaves unexplained proposes
candidates; the exact reduced loss (the Schur complement of the solve's own normal equations,
:class:`.solver.JointFactor`) ranks them and refines the best frequency off the FFT grid.  Lines
are added while each explains at least ``field_line_tol`` of the receivers' initial residual,
up to ``field_max_lines``.  :func:`initialise_field` fits the SIREN to the estimate
(``field_fit_steps`` Adam steps at ``field_fit_lr``); training then goes on jointly, the
field at lr_siren.

The field is identified up to a per-neuron offset (the per-neuron basis absorbs constants),
which field_R2 allows for.  The edge fit (varpro) of such a run uses the other neurons only
(their targets hold no unknown input).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ..errors import ConfigError
from ..models.bspline import column_basis
from .solver import CHUNK, JointFactor, accumulate, activity_ranges, solver_frames

#: frames per Adam step of the field fit
FIELD_BATCH = 2048
#: zero padding of the periodogram (finer candidate grid)
PAD = 4
#: candidate peaks of the periodogram ranked by the exact loss, per added line
CANDIDATES = 8
#: memory the FlyVis input estimate may hold (its designs over all its frames, float64)
ESTIMATE_BYTES = 2e9
#: over-relaxation of the alternating input estimate (1: plain alternation; measured on FlyVis
#: extent 3, 30 rounds: field_R2 of the estimate 0.84 at 1, 0.90 at 1.5, 0.93 at 1.9)
RELAX = 1.9
#: lowest frequency considered, in cycles over the pursuit's frames (slower drifts are taken up
#: by the per-neuron basis of u_i)
MIN_CYCLES = 2.0


@torch.no_grad()
def input_free_target(du: torch.Tensor, x_in, frames: torch.Tensor) -> torch.Tensor:
    """du - x on ``frames`` (other frames keep du): the part of du/dt the network explains, for
    a known input (a tensor) or a learned one (:class:`~connectome_gnn.models.siren.LearnedInput`)."""
    target = du.clone()
    for start in range(0, len(frames), CHUNK):
        idx = frames[start : start + CHUNK].to(du.device)
        target[idx] = du[idx] - x_in[idx].to(du.dtype)
    return target


def pursuit_frames(n_frames: int, wanted: int) -> torch.Tensor:
    """About ``wanted`` training frames on a regular stride (a periodogram needs one)."""
    stride = max(1, math.ceil(n_frames / max(int(wanted), 2)))
    return torch.arange(0, n_frames, stride)


def sinusoids(frames: torch.Tensor, freqs) -> torch.Tensor:
    """cos and sin of 2 pi f k at frame indices k (T,) for frequencies f (cycles per frame):
    T x 2F, float64."""
    k = frames.double().unsqueeze(-1)
    f = torch.as_tensor(np.asarray(freqs, dtype=np.float64), device=k.device)
    arg = 2.0 * math.pi * k * f
    return torch.cat([torch.cos(arg), torch.sin(arg)], -1)


class LineProblem:
    """The joint solve of the input neurons' du on [E, C_i] (edge values of every sender, the
    per-neuron basis) on regular frames, held in memory to score added columns Phi exactly."""

    def __init__(self, model, u, du, frames, receivers, n_basis: int, ridge: float):
        self.frames = frames
        lo, hi = activity_ranges(u, frames)
        lo, hi = lo[receivers], hi[receivers]
        stats = accumulate(model.edge, u, du, frames, receivers, lo, hi, n_basis)
        self.factor = JointFactor(stats, ridge)
        w, beta = self.factor.solve(stats.c.unsqueeze(-1), stats.d.unsqueeze(-1))
        E, C, Y = [], [], []
        with torch.no_grad():
            for start in range(0, len(frames), CHUNK):
                idx = frames[start : start + CHUNK].to(u.device)
                uk = u[idx]
                E.append(model.edge(uk).double())
                if n_basis:
                    C.append(column_basis(uk[:, receivers].double(), lo, hi, n_basis))
                Y.append(du[idx][:, receivers].double())
        self.E = torch.cat(E)  # T x N
        self.C = torch.cat(C) if n_basis else None  # T x M x K
        y = torch.cat(Y)  # T x M
        r = y - self.E @ w.squeeze(-1)
        if n_basis:
            r = r - torch.einsum("tmk,mk->tm", self.C, beta.squeeze(-1))
        self.residual = r  # what [E, C_i] leaves unexplained, T x M
        self.rr = (r * r).sum(0)  # M

    def gains(self, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss reduction per receiver (M) when the columns ``phi`` (T x L, shared by all
        receivers, own coefficients each) join the solve, and their coefficients (M x L)."""
        m = self.residual.shape[1]
        L = phi.shape[1]
        ephi = self.E.T @ phi  # N x L
        cphi = (
            torch.einsum("tmk,tl->mkl", self.C, phi)
            if self.C is not None
            else torch.zeros(m, 0, L, dtype=phi.dtype, device=phi.device)
        )
        w, beta = self.factor.solve(ephi.unsqueeze(1).expand(-1, m, -1).contiguous(), cphi)
        S = (phi.T @ phi).unsqueeze(0) - torch.einsum("nl,nmq->mlq", ephi, w)
        if self.C is not None:
            S = S - torch.einsum("mkl,mkq->mlq", cphi, beta)
        b = (phi.T @ self.residual).T  # M x L
        S = S + 1e-12 * S.diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * torch.eye(
            L, dtype=S.dtype, device=S.device
        )
        gamma = torch.linalg.solve(S, b.unsqueeze(-1)).squeeze(-1)
        return (b * gamma).sum(-1), gamma

    def loss(self, freqs) -> float:
        """Total residual (summed over receivers and frames) with lines at ``freqs``."""
        g, _ = self.gains(sinusoids(self.frames, freqs).to(self.E))
        return float((self.rr - g).sum())

    def candidates(self, freqs: list[float], stride: int) -> np.ndarray:
        """Peaks of the summed periodogram of the residual with the current lines, as
        frequencies in cycles per frame, strongest first."""
        r = self.residual
        if freqs:
            phi = sinusoids(self.frames, freqs).to(self.E)
            _, gamma = self.gains(phi)
            r = r - phi @ gamma.T
        t = r.shape[0]
        power = (torch.fft.rfft(r - r.mean(0), n=PAD * t, dim=0).abs() ** 2).sum(1).cpu().numpy()
        lowest = int(math.ceil(MIN_CYCLES * PAD))
        peaks = [
            i
            for i in range(max(lowest, 1), len(power) - 1)
            if power[i] >= power[i - 1] and power[i] >= power[i + 1]
        ]
        peaks.sort(key=lambda i: -power[i])
        return np.asarray(peaks[:CANDIDATES], dtype=np.float64) / (PAD * t * stride)


def pursue_lines(
    model,
    u: torch.Tensor,
    du: torch.Tensor,
    cfg: dict,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The input of the field's target neurons as a sum of sinusoids (see the module
    docstring).  Returns the frequencies (cycles per frame), the estimate's frames and values
    (T x M, the targets' order: one unit per target in the signal family) and what it did."""
    t0 = time.perf_counter()
    field = model.field
    frames = pursuit_frames(u.shape[0], int(cfg["W_solve_frames"]))
    stride = int(frames[1] - frames[0]) if len(frames) > 1 else 1
    problem = LineProblem(
        model,
        u,
        du,
        frames,
        field.targets,
        int(cfg["W_solve_phi_basis"]),
        float(cfg["W_solve_ridge"]),
    )
    start = float(problem.rr.sum())
    freqs: list[float] = []
    loss = start
    bin_width = 1.0 / (PAD * len(frames) * stride)
    for _ in range(int(cfg["field_max_lines"])):
        found = [(problem.loss(freqs + [f]), f) for f in problem.candidates(freqs, stride)]
        if not found:
            break
        best_loss, best = min(found)
        refined = minimize_scalar(
            lambda f: problem.loss(freqs + [f]),
            bounds=(best - bin_width, best + bin_width),
            method="bounded",
            options={"xatol": 1e-4 * bin_width},
        )
        if refined.fun < best_loss:
            best_loss, best = float(refined.fun), float(refined.x)
        if loss - best_loss < float(cfg["field_line_tol"]) * start:
            break
        freqs.append(float(best))
        loss = best_loss
        if log:
            log(
                f"input pursuit: line {len(freqs)} at {best:.6g} cycles/frame, "
                f"residual {loss / start:.3g} of the input-free solve's"
            )
    phi = sinusoids(frames, freqs).to(problem.E)
    if freqs:
        _, gamma = problem.gains(phi)
        values = (phi @ gamma.T).float()
    else:
        values = torch.zeros(len(frames), len(field.targets), device=u.device)
    return {
        "frequencies": freqs,
        "frames": frames,
        "values": values,
        "info": {
            "field_lines": len(freqs),
            "field_frequencies": [float(f) for f in freqs],
            "field_pursuit_residual": loss / start if start > 0 else 0.0,
            "field_pursuit_s": time.perf_counter() - t0,
        },
    }


def fit_field(
    field, frames: torch.Tensor, values: torch.Tensor, lr: float, steps: int, gen
) -> float:
    """``steps`` steps of an Adam of its own (at ``lr``) of the field towards ``values``
    (T x n_units, one column per field unit) at ``frames``; minibatches of :data:`FIELD_BATCH`
    frames.  Returns the last loss relative to the variance of the values."""
    optimizer = torch.optim.Adam(field.parameters(), lr=lr)
    scale = float(values.var()) or 1.0
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        pick = torch.randint(len(frames), (min(FIELD_BATCH, len(frames)),), generator=gen)
        pred = field.unit_values(frames[pick].to(values.device))
        loss = ((pred - values[pick.to(values.device)]) ** 2).mean() / scale
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def fit_to_estimate(
    field, found: dict, cfg: dict, gen, log: Callable[[str], None] | None = None
) -> dict:
    """``field_fit_steps`` Adam steps (at ``field_fit_lr``) of the field towards an estimate of
    the input (``found``: its frames and values, and what the estimate did).  Returns the
    estimate's info with the fit's."""
    t0 = time.perf_counter()
    lr, steps = float(cfg["field_fit_lr"]), int(cfg["field_fit_steps"])
    loss = fit_field(field, found["frames"], found["values"], lr, steps, gen)
    if log:
        log(f"input field fitted to the estimate: relative loss {loss:.3g}")
    return {**found["info"], "field_fit_loss": loss, "field_fit_s": time.perf_counter() - t0}


def initialise_field(
    model,
    u: torch.Tensor,
    du: torch.Tensor,
    cfg: dict,
    gen: torch.Generator,
    log: Callable[[str], None] | None = None,
) -> dict:
    """``field_init: estimate``: the pursuit's estimate of the input, then the field fitted to
    it (:func:`fit_to_estimate`).  Returns what it did."""
    return fit_to_estimate(model.field, pursue_lines(model, u, du, cfg, log), cfg, gen, log)


@torch.no_grad()
def estimate_receiver_input(model, v: torch.Tensor, du: torch.Tensor, cfg: dict, log=None) -> dict:
    """The input of a known-connectome model (FlyVis) whose targets share one value per unit
    (a column's photoreceptors), by alternating least squares on the per-receiver problems.

    Every target i reads unit m(i): dv_i/dt = c_i + a_i v_i + h_i x_m(t) + sum_e W_e f(v_j).
    Given x, each target's coefficients are its own small least-squares solve
    (:func:`.receiver_solver.solve_group`); given those, x_m(t) is the least squares of the
    unit's targets' residuals r_i(t) = h_i x_m(t) at every frame.  The targets of a unit differ
    in their dynamics (time constants, in-edges), which pins x down; the gauge left (a scale
    per unit) is fixed by tying each unit's gains to the medians of their types.  Starts from
    the mean standardised dv/dt of each unit's targets; ``field_fit_rounds`` rounds, on
    ``W_solve_frames`` frames.  Returns the frames, the estimate (T x n_units) and what it did."""
    from .receiver_solver import GroupStats, design, edge64, groups_of, solve_group

    t0 = time.perf_counter()
    field = model.field
    frames = solver_frames(v.shape[0], int(cfg["W_solve_frames"])).to(v.device)
    targets, units = field.targets, field.units
    groups = groups_of(model, targets)
    need = (
        len(frames)
        * 8
        * (model.n_neurons + sum(g.edges.shape[0] * (g.edges.shape[1] + 4) for g in groups))
    )
    if need > ESTIMATE_BYTES:  # the designs are held in memory (not chunked, unlike the solve)
        fit = max(2, int(len(frames) * ESTIMATE_BYTES / need))
        raise ConfigError(
            f"field 'W_solve_frames': the input estimate would hold {need / 1e9:.1f} GB for "
            f"{len(targets)} input neurons over {len(frames)} frames (limit "
            f"{ESTIMATE_BYTES / 1e9:.0f} GB); set W_solve_frames <= {fit}"
        )
    vk = v[frames].double()
    ek = edge64(model)(vk)
    yk = du[frames].double()
    ridge = float(cfg["W_solve_ridge"])
    xs = [design(g, ek, vk, None) for g in groups]  # (T, n_d, d + 3), input column zero
    ys = [yk[:, g.receivers] for g in groups]
    unit_of = torch.full((model.n_neurons,), -1, dtype=torch.long, device=v.device)
    unit_of[targets] = units
    n_units = field.n_units
    # the start: each unit's mean standardised dv/dt
    z = (yk[:, targets] - yk[:, targets].mean(0)) / yk[:, targets].std(0).clamp(min=1e-12)
    x = torch.zeros(len(frames), n_units, dtype=torch.float64, device=v.device)
    x.index_add_(1, units, z)
    x = x / torch.bincount(units, minlength=n_units).clamp(min=1).to(x)
    history = []
    for _ in range(max(int(cfg["field_fit_rounds"]), 1)):
        num = torch.zeros_like(x)
        den = torch.zeros(n_units, dtype=torch.float64, device=v.device)
        rss_total = 0.0
        gain = torch.zeros(model.n_neurons, dtype=torch.float64, device=v.device)
        for g, X, y in zip(groups, xs, ys, strict=True):
            X[..., -1] = x[:, unit_of[g.receivers]]
            stats = GroupStats(
                torch.einsum("tna,tnb->nab", X, X), torch.einsum("tna,tn->na", X, y), (y * y).sum(0)
            )
            coef, rss = solve_group(stats, ridge)
            rss_total += float(rss.sum())
            h = coef[:, -1]
            r = y - torch.einsum("tna,na->tn", X[..., :-1], coef[:, :-1])
            m = unit_of[g.receivers]
            num.index_add_(1, m, r * h)
            den.index_add_(0, m, h * h)
            gain[g.receivers] = h
        history.append(rss_total)
        new = num / den.clamp(min=1e-300)
        new = new - new.mean(0)
        new = new * _unit_scales(gain[targets], units, n_units)
        x = x + RELAX * (new - x)  # over-relaxed: plain alternation crawls along a valley
        if log and len(history) % 10 == 0:
            log(f"input estimate: round {len(history)}, residual {rss_total:.6g}")
        if len(history) > 1 and abs(history[-2] - history[-1]) <= 1e-7 * history[-2]:
            break
    residual = history[-1] / float((yk[:, targets] ** 2).sum())
    if log:
        log(
            f"input estimate: {len(history)} alternating rounds, residual "
            f"{residual:.3g} of the targets' dv/dt power"
        )
    return {
        "frames": frames,
        "values": x.float(),
        "info": {
            "field_als_rounds": len(history),
            "field_als_residual": residual,
            "field_als_s": time.perf_counter() - t0,
        },
    }


def _unit_scales(h: torch.Tensor, units: torch.Tensor, n_units: int) -> torch.Tensor:
    """Per-unit factors that bring each unit's gains h (M,, in ``targets`` order) to the
    medians over all units of the gains of the same slot, the k-th target of a unit in
    ``targets`` order (the same type in every unit: targets are listed type by type)."""
    order = torch.argsort(units * (len(units) + 1) + torch.arange(len(units), device=units.device))
    slot = torch.empty_like(units)
    counts = torch.bincount(units, minlength=n_units)
    starts = torch.cumsum(counts, 0) - counts
    slot[order] = torch.arange(len(units), device=units.device) - starts[units[order]]
    ratio = torch.empty_like(h)
    for k in torch.unique(slot):
        sel = slot == k
        ref = h[sel].median()
        ratio[sel] = h[sel] / (ref if ref.abs() > 0 else 1.0)
    scales = torch.ones(n_units, dtype=h.dtype, device=h.device)
    for m in range(n_units):
        sel = units == m
        if sel.any():
            scales[m] = ratio[sel].median()
    return torch.where(scales.abs() > 1e-12, scales, torch.ones_like(scales))
