"""Per-receiver W solves on a known connectome (the FlyVis family).

The FlyVis neuron is a passive point neuron:

    dv_i/dt = (-v_i + V_rest_i + sum_{e = (j -> i)} w_e f(v_j) + x_i) / tau_i

so, for a given edge function f, each receiver's derivative is *linear* in its unknowns: the
scaled weights w_e / tau_i of its in-edges, an offset V_rest_i / tau_i, a leak -1 / tau_i and an
input gain 1 / tau_i.  Every receiver has its own small least-squares problem over the frames
(d_i + 3 unknowns, d_i its in-degree); they are solved batched, one batched Cholesky per in-degree
group (:func:`connectome_gnn.models.flyvis.in_degree_groups`), never in a loop over neurons.
The edge function (a spline lin_edge shared by every sender) is fitted first by *variable
projection*: its loss is the data loss minimised over all receivers' unknowns, and L-BFGS steps
its coefficients along the gradient of that loss (:func:`fit_receiver_edge`).

The model then takes W = the solved w_e / tau_i, so that lin_phi sees msg / tau_i and must be
(V_rest_i - v + x) / tau_i + msg: its slope in msg is 1, its slope in v is -1 / tau_i.  lin_phi
and the embeddings are fitted to the solved per-neuron affine functions on training frames
(:func:`fit_phi_to_solution`); the embeddings start from the solved per-neuron coefficients, so
that neurons with the same (tau, V_rest) start together.

Why not a Gauss-Newton step on W with the MLPs fixed (measured earlier on flyvis_049 extent 3):
the inputs of one receiver are collinear, and W absorbed the MLPs' misfit (connectivity_R2
0.87 -> 0.34).  Here nothing is held at a wrong value: the per-neuron update is solved jointly
with W, in the model class of the simulator.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.flyvis import in_degree_groups
from ..models.spline import SplineEdge
from .solver import CHUNK, best_start, edge_fit_receivers, lbfgs, solver_frames

#: per-receiver columns besides the in-edges: offset, own voltage, own input
N_OWN = 3


@dataclass
class Group:
    """Receivers of one in-degree d: their ids (n_d,), their in-edges (n_d, d) and senders."""

    receivers: torch.Tensor
    edges: torch.Tensor
    senders: torch.Tensor


def groups_of(model, receivers: torch.Tensor | None = None) -> list[Group]:
    """The in-degree groups of the model's connectome (receivers without in-edges form a group
    of degree 0), optionally restricted to ``receivers``."""
    out = []
    keep = None
    if receivers is not None:
        keep = torch.zeros(model.n_neurons, dtype=torch.bool, device=model.pre.device)
        keep[receivers.to(keep.device)] = True
    groups = in_degree_groups(model.pre, model.post, model.n_neurons)
    # neurons without inputs (photoreceptors, say) still have their own leak, offset and gain
    deg = torch.bincount(model.post, minlength=model.n_neurons)
    orphans = torch.nonzero(deg == 0).squeeze(1)
    if len(orphans):
        groups.append((orphans, torch.zeros(len(orphans), 0, dtype=torch.long, device=deg.device)))
    for recv, edges in groups:
        if keep is not None:
            sel = keep[recv]
            recv, edges = recv[sel], edges[sel]
            if not len(recv):
                continue
        out.append(Group(recv, edges, model.pre[edges]))
    return out


def design(group: Group, e: torch.Tensor, v: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
    """The regressors of a group's receivers on a chunk of T frames: (T, n_d, d + 3) =
    [edge values of the senders, 1, own voltage, own input (0 without one)]."""
    t, n_d = v.shape[0], group.receivers.numel()
    own_v = v[:, group.receivers]
    own_x = torch.zeros_like(own_v) if x is None else x[:, group.receivers]
    return torch.cat(
        [
            e[:, group.senders],
            torch.ones(t, n_d, 1, dtype=e.dtype, device=e.device),
            own_v.unsqueeze(-1),
            own_x.unsqueeze(-1),
        ],
        dim=-1,
    )


@dataclass
class GroupStats:
    """Normal equations of one group: G = X^T X (n_d, p, p), b = X^T y (n_d, p), yy = y^T y."""

    G: torch.Tensor
    b: torch.Tensor
    yy: torch.Tensor


def accumulate(
    edge: Callable[[torch.Tensor], torch.Tensor],
    groups: list[Group],
    v: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor | None,
    frames: torch.Tensor,
) -> list[GroupStats]:
    """Normal equations over ``frames`` (in chunks), float64; ``edge`` maps voltages (T, N) to
    the senders' edge values (T, N)."""
    stats: list[GroupStats] | None = None
    frames = frames.to(v.device)
    for start in range(0, len(frames), CHUNK // 4):
        k = frames[start : start + CHUNK // 4]
        vk = v[k].double()
        ek = edge(vk).double()
        xk = None if x is None else x[k].double()
        yk = y[k].double()
        parts = []
        for g in groups:
            X = design(g, ek, vk, xk)
            yg = yk[:, g.receivers]
            parts.append(
                GroupStats(
                    torch.einsum("tna,tnb->nab", X, X),
                    torch.einsum("tna,tn->na", X, yg),
                    (yg * yg).sum(0),
                )
            )
        if stats is None:
            stats = parts
        else:
            for s, p in zip(stats, parts, strict=True):
                s.G.add_(p.G)
                s.b.add_(p.b)
                s.yy.add_(p.yy)
    assert stats is not None
    return stats


#: relative ridge on a receiver's own columns (offset, voltage, input): numerical safety only
OWN_RIDGE = 1e-12


def _penalty(diag: torch.Tensor, ridge: float) -> torch.Tensor:
    """The diagonal penalty (n_d, p, p) of the Jacobi-scaled problems of a group, from the
    diagonals of their Gram matrices (n_d, p): on the in-edge weights ``ridge`` x the mean
    diagonal of the receiver's edge columns (in unscaled units), so that a sender whose edge
    values are nearly zero on every frame (it never crosses the ReLU threshold; a fitted edge
    function is zero there only to round-off) gets weight 0, not a huge weight fitted to
    round-off; :data:`OWN_RIDGE` on the receiver's own N_OWN columns."""
    d = diag.shape[-1] - N_OWN
    pen = torch.full_like(diag, OWN_RIDGE)
    if d:
        edges = diag[:, :d]
        level = edges.mean(-1, keepdim=True)
        ratio = level / torch.where(edges > 0, edges, torch.ones_like(edges))
        # an all-zero column (scale 1 after Jacobi) just needs some penalty: its weight is 0
        pen[:, :d] = torch.where(edges > 0, ridge * ratio, torch.ones_like(edges)).clamp(max=1e12)
    return torch.diag_embed(pen)


def _scaled(G: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jacobi scaling (unit column norms; all-zero columns, e.g. the input of a neuron without
    one, keep scale 1 and get coefficient 0): G / s s^T, b / s and s."""
    diag = G.diagonal(dim1=1, dim2=2).detach()
    scale = torch.where(diag > 0, diag.sqrt(), torch.ones_like(diag))
    return G / (scale.unsqueeze(-1) * scale.unsqueeze(-2)), b / scale, scale


def solve_group(s: GroupStats, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares of every receiver of a group: coefficients (n_d, p) and the residual sum
    of squares (n_d,).

    The columns are scaled to unit norm, and ``ridge`` penalises the in-edge weights only
    (relative to the receiver's mean edge-column norm, see :func:`_penalty`).  So
    where the data cannot split a receiver's update between its own voltage and an in-edge
    (a self-synapse on a neuron that never crosses the ReLU threshold: ReLU(v_i) = v_i), the
    self-weight goes to zero and the update takes the rest, as an L1 or L2 prior on W would
    choose (the true self-weights are small: this keeps tau and the scale of the neuron's
    incoming weights within 1 / (1 - w_ii) of the truth).  If a problem is still singular (a
    silent neuron), a growing jitter on all columns picks a split."""
    Gs, bs, scale = _scaled(s.G, s.b)
    p = Gs.shape[-1]
    pen = _penalty(s.G.diagonal(dim1=1, dim2=2), ridge)
    eye = torch.eye(p, dtype=Gs.dtype, device=Gs.device)
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        L, info = torch.linalg.cholesky_ex(Gs + pen + jitter * eye)
        if int(info.max()) == 0:
            break
    else:
        raise ConfigError(
            "field 'W_solve_ridge': a receiver's least-squares problem is singular even with "
            "jitter 1e-4 (non-finite activity?)"
        )
    w = torch.cholesky_solve(bs.unsqueeze(-1), L).squeeze(-1) / scale
    rss = s.yy - 2 * (w * s.b).sum(-1) + torch.einsum("na,nab,nb->n", w, s.G, w)
    return w, rss.clamp(min=0.0)


@dataclass
class Solution:
    """A per-receiver solve: W (E,) per edge, and per neuron offset c, voltage slope a and input
    gain h (N,); dv_i/dt = c_i + a_i v_i + h_i x_i + sum_e W_e f(v_j)."""

    W: torch.Tensor
    c: torch.Tensor
    a: torch.Tensor
    h: torch.Tensor
    mse: torch.Tensor


def solve_receivers(
    edge: Callable[[torch.Tensor], torch.Tensor],
    model,
    v: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor | None,
    frames: torch.Tensor,
    ridge: float,
) -> Solution:
    """Every receiver's least-squares solve (see the module docstring), float64."""
    groups = groups_of(model)
    stats = accumulate(edge, groups, v, y, x, frames)
    n, dev = model.n_neurons, v.device
    W = torch.zeros(model.pre.numel(), dtype=torch.float64, device=dev)
    own = torch.zeros(N_OWN, n, dtype=torch.float64, device=dev)
    mse = torch.zeros(n, dtype=torch.float64, device=dev)
    for g, s in zip(groups, stats, strict=True):
        coef, rss = solve_group(s, ridge)
        d = g.edges.shape[1]
        W[g.edges.reshape(-1)] = coef[:, :d].reshape(-1)
        own[:, g.receivers] = coef[:, d:].T
        mse[g.receivers] = rss / len(frames)
    if not torch.isfinite(W).all():
        raise ConfigError("field 'W_solve_ridge': the per-receiver solve gave non-finite weights")
    return Solution(W, own[0], own[1], own[2], mse)


def edge64(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's edge function evaluated in float64: a spline lin_edge through a float64 copy
    (the inputs of a receiver can be nearly collinear, e.g. photoreceptors of one column, and
    float32 rounding of the edge values, ~1e-7, is then amplified into large cancelling
    weights: connectivity_R2 0.28 against 0.99 on noiseless flyvis_049 extent 3); an MLP
    lin_edge (with the embedding) in its own precision."""
    if isinstance(model.lin_edge, SplineEdge):
        spline = copy.deepcopy(model.lin_edge).double()
        return lambda v: spline(v.double().unsqueeze(-1)).squeeze(-1)
    return lambda v: model.edge(v.to(model.W.dtype)).double()


# ------------------------------------------------------------------------------ the edge fit
def _normalised(edge: SplineEdge, v: torch.Tensor) -> torch.Tensor:
    """Edge values at ``v`` in the gauge the loss does not see: 0 at v = 0, unit RMS."""
    raw = edge(v.unsqueeze(-1)).squeeze(-1)
    centred = raw - edge(torch.zeros(1, 1, dtype=v.dtype, device=v.device)).reshape(())
    return centred / centred.pow(2).mean().sqrt().clamp(min=1e-300)


def _varpro_loss(edge: SplineEdge, groups: list[Group], vk, yk, xk, ridge: float) -> torch.Tensor:
    """Mean over receivers of the residual variance left by their exact solves, relative to
    the targets' variance; differentiable in the edge coefficients."""
    e = _normalised(edge, vk)
    total = vk.new_zeros(())
    count = 0
    for g in groups:
        X = design(g, e, vk, xk)
        yg = yk[:, g.receivers]
        G = torch.einsum("tna,tnb->nab", X, X)
        b = torch.einsum("tna,tn->na", X, yg)
        Gs, bs, _ = _scaled(G, b)
        pen = _penalty(G.diagonal(dim1=1, dim2=2).detach(), max(ridge, 1e-10))
        ws = torch.linalg.solve(Gs + pen, bs.unsqueeze(-1))
        explained = (bs * ws.squeeze(-1)).sum(-1)
        total = total + ((yg * yg).sum(0) - explained).sum()
        count += g.receivers.numel()
    return total / (count * vk.shape[0] * float(yk.var()))


def fit_receiver_edge(
    model,
    v: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor | None,
    cfg: dict,
    seed: int,
    log: Callable[[str], None] | None = None,
    exclude: torch.Tensor | None = None,
) -> dict:
    """Variable-projection fit of a spline lin_edge (``edge_fit: varpro``) on
    ``edge_fit_frames`` evenly spread frames and ``edge_fit_receivers`` random receivers (never
    those in ``exclude``, neurons whose input is unknown): the best of the standard start
    shapes, then L-BFGS (``edge_fit_iterations`` evaluations).  The edge function is left in
    its gauge (0 at v = 0, unit RMS over the fit's frames)."""
    if not isinstance(model.lin_edge, SplineEdge):
        raise ConfigError(
            "field 'edge_fit': the FlyVis edge fit needs a spline lin_edge (lin_edge_form: spline)"
        )
    t0 = time.perf_counter()
    frames = solver_frames(v.shape[0], int(cfg["edge_fit_frames"])).to(v.device)
    receivers = edge_fit_receivers(model.n_neurons, cfg, seed, exclude).to(v.device)
    groups = groups_of(model, receivers)
    vk, yk = v[frames].double(), y[frames].double()
    xk = None if x is None else x[frames].double()
    ridge = float(cfg["W_solve_ridge"])
    edge = SplineEdge(model.lin_edge.n_knots, 1.0, 1.0).double().to(v.device)
    for name in ("scale", "z_lo", "h"):
        getattr(edge, name).copy_(getattr(model.lin_edge, name))
    with torch.no_grad():  # the start: the standard shape of lowest loss
        start, loss0 = best_start(
            edge, vk, lambda e: float(_varpro_loss(e, groups, vk, yk, xk, ridge))
        )
    history = [loss0]
    iterations = int(cfg["edge_fit_iterations"])
    opt = lbfgs([edge.weight], iterations)

    def closure():
        opt.zero_grad()
        loss = _varpro_loss(edge, groups, vk, yk, xk, ridge)
        (loss * 1e4).backward()
        history.append(float(loss.detach()))
        if log and len(history) % 10 == 0:
            log(f"edge fit (L-BFGS): {len(history)} evaluations, relative loss {history[-1]:.4e}")
        return loss.detach() * 1e4

    if iterations:
        opt.step(closure)
    with torch.no_grad():  # the gauge of the loss, on the model's spline
        offset = edge(torch.zeros(1, 1, dtype=torch.float64, device=v.device)).reshape(())
        rms = (edge(vk.reshape(-1, 1)) - offset).pow(2).mean().sqrt()
        model.lin_edge.weight.copy_(((edge.weight - offset) / rms).to(model.lin_edge.weight))
    return {
        "edge_fit_method": f"l-bfgs from {start}",
        "edge_fit_steps": len(history),
        "edge_fit_loss_start": history[0],
        "edge_fit_loss": min(history),
        "edge_fit_s": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------ lin_phi and embeddings
#: bounds of the solved log rate log(1 / tau) and resting voltage taken as targets: a neuron
#: whose solve gives a flat or rising leak (a silent neuron) gets the slowest rate
LOG_RATE_RANGE = (-3.0, 6.0)
V_REST_RANGE = (-5.0, 5.0)


@torch.no_grad()
def passive_parameters(sol: Solution) -> torch.Tensor:
    """The solved update as passive-neuron parameters (N, 4): log rate log(1 / tau) = log(-a),
    resting voltage -c / a, message gain 1 (W holds w / tau) and relative input gain h / (-a),
    each clipped to a physical range."""
    rate = (-sol.a).clamp(min=math.exp(LOG_RATE_RANGE[0]), max=math.exp(LOG_RATE_RANGE[1]))
    return torch.stack(
        [
            rate.log(),
            (sol.c / rate).clamp(*V_REST_RANGE),
            torch.ones_like(rate),
            (sol.h / rate).clamp(-10.0, 10.0),
        ],
        dim=1,
    )


def _standardised(feats: torch.Tensor) -> torch.Tensor:
    """Columns centred on their median and scaled by their MAD (1 where the MAD is 0)."""
    med = feats.median(0).values
    mad = 1.4826 * (feats - med).abs().median(0).values
    return (feats - med) / torch.where(mad > 1e-9, mad, torch.ones_like(mad))


@torch.no_grad()
def embeddings_from_solution(model, params: torch.Tensor) -> None:
    """Start the embeddings from the solved passive parameters (log rate, resting voltage,
    input gain; standardised): neurons with equal dynamics start together.  Dimensions beyond
    those three keep their values."""
    z = _standardised(params[:, [0, 1, 3]])
    k = min(z.shape[1], model.a.shape[1])
    model.a[:, :k] = z[:, :k].to(model.a)


def _adam_fit(groups: list[dict], steps: int, lr: float, loss_fn: Callable[[], torch.Tensor]):
    """``steps`` Adam steps on ``loss_fn()`` over the parameter ``groups`` at the rate lr with a
    cosine decay to lr / 50; returns the last loss (a float)."""
    opt = torch.optim.Adam([{**g, "lr": lr} for g in groups])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), lr / 50)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return float(loss.detach())


def _fit_passive(model, params: torch.Tensor, cfg: dict) -> float:
    """Fit the coefficient MLP of a passive lin_phi to the solved parameters (full batch over
    the neurons, ``phi_fit_steps`` Adam steps at the rate lr); returns the final loss (mean
    squared error relative to each parameter's variance)."""
    target = params.to(model.a)
    scale = target.std(0)
    scale = torch.where(scale > 1e-6, scale, torch.ones_like(scale))
    a = model.a.detach()

    def loss():
        return (((model.lin_phi.coefficients(a) - target) / scale) ** 2).mean()

    groups = [{"params": list(model.lin_phi.parameters())}]
    return _adam_fit(groups, int(cfg["phi_fit_steps"]), float(cfg["lr"]), loss)


def _fit_mlp_on_frames(model, v, x, sol: Solution, cfg: dict, seed: int) -> float:
    """Fit an MLP lin_phi and the embeddings to the solved update c_i + a_i v_i + h_i x_i +
    msg_i on training frames (``phi_fit_steps`` Adam steps of 4 x ``batch_size`` random frames
    at the rate lr); returns the final relative loss."""
    batch = max(4 * int(cfg["batch_size"]), 8)
    gen = torch.Generator().manual_seed(int(seed))
    c, a, h = (t.to(v.dtype) for t in (sol.c, sol.a, sol.h))
    var: list[float] = []

    def loss():
        k = torch.randint(v.shape[0], (batch,), generator=gen).to(v.device)
        vb = v[k]
        xb = None if x is None else x[k]
        with torch.no_grad():
            msg = model.message(model.edge(vb))
            target = c + a * vb + msg + (0.0 if xb is None else h * xb)
            if not var:
                var.append(float(target.var()) or 1.0)
        return ((model.phi(vb, msg, xb) - target) ** 2).mean() / var[0]

    groups = [{"params": list(model.lin_phi.parameters())}, {"params": [model.a]}]
    return _adam_fit(groups, int(cfg["phi_fit_steps"]), float(cfg["lr"]), loss)


def fit_phi_to_solution(model, v, x, sol: Solution, cfg: dict, seed: int) -> dict:
    """Start the embeddings from the solved dynamics and fit lin_phi to the solution: a passive
    lin_phi (``lin_phi_form: passive``) to the solved parameters directly, an MLP on training
    frames."""
    t0 = time.perf_counter()
    params = passive_parameters(sol)
    embeddings_from_solution(model, params)
    if not int(cfg["phi_fit_steps"]):
        return {}
    if hasattr(model.lin_phi, "coefficients"):
        loss = _fit_passive(model, params, cfg)
    else:
        loss = _fit_mlp_on_frames(model, v, x, sol, cfg, seed)
    return {"phi_fit_loss": loss, "phi_fit_s": time.perf_counter() - t0}


def _learned_input(model, v, du, cfg: dict, seed: int, log) -> tuple[torch.Tensor, dict]:
    """``input: learned``: the field fitted to the alternating estimate of the input
    (``field_init: estimate``, :func:`.field_fit.estimate_receiver_input`) or left at its
    start (``none``); returns its values on every training frame (a tensor, no gradient) for
    the solves that follow, and what it did."""
    from .field_fit import estimate_receiver_input, fit_to_estimate

    field, info = model.field, {}
    if cfg["field_init"] == "estimate":
        found = estimate_receiver_input(model, v, du, cfg, log)
        gen = torch.Generator().manual_seed(int(seed))
        info = fit_to_estimate(field, found, cfg, gen, log)
    with torch.no_grad():
        x = torch.cat(
            [
                field(torch.arange(s, min(s + CHUNK, v.shape[0]), device=v.device))
                for s in range(0, v.shape[0], CHUNK)
            ]
        ).to(v.dtype)
    return x, info


def prepare_receivers(
    model, v: torch.Tensor, du: torch.Tensor, x: torch.Tensor | None, cfg: dict, seed: int, log
) -> dict:
    """A fresh start of a FlyVis solver run: edge fit (``edge_fit: varpro``), the per-receiver
    solve over ``W_solve_frames`` frames, W set to the solved weights, the embeddings started
    from the solved dynamics and lin_phi fitted to them.  Returns what it did."""
    if cfg["W_solve"] != "lstsq":
        raise ConfigError(f"field 'W_solve': {cfg['W_solve']!r}: the FlyVis solver is lstsq only")
    if int(cfg["W_solve_every"]):
        raise ConfigError(
            "field 'W_solve_every': periodic re-solves are for the signal family (the FlyVis "
            "update is not additive in the message); set 0"
        )
    info: dict = {}
    field = getattr(model, "field", None)
    if field is not None:  # a learned input: the edge fit leaves its targets out
        x = None
    if cfg["edge_fit"] != "none":
        exclude = None if field is None else field.targets
        info.update(fit_receiver_edge(model, v, du, x, cfg, seed, log, exclude=exclude))
    if field is not None:
        x, field_info = _learned_input(model, v, du, cfg, seed, log)
        info.update(field_info)
    t0 = time.perf_counter()
    frames = solver_frames(v.shape[0], int(cfg["W_solve_frames"]))
    with torch.no_grad():
        sol = solve_receivers(edge64(model), model, v, du, x, frames, float(cfg["W_solve_ridge"]))
        model.set_effective_W(sol.W.to(model.W.dtype))
    info.update(
        W_solve_s=time.perf_counter() - t0,
        W_solve_mse=float(sol.mse.mean()),
        W_solve_rel_mse=float(sol.mse.mean() / du.double().var()),
    )
    info.update(fit_phi_to_solution(model, v, x, sol, cfg, seed))
    return info
