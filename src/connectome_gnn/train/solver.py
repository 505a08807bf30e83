"""Exact W solves for the signal family, and the fits that make them exact.

The signal model du_i = lin_phi(u_i, a_i) + sum_j W_ij lin_edge(u_j) is linear in W.  For a fixed
edge function the best W over many frames is a least-squares problem whose Gram matrix
E^T E (E = lin_edge(u), frames x N) all receivers share.  Two facts, measured on our own
simulations (N = 1000, 50,000 frames, see bench/recovery.py and docs), shape this module:

1. The Gram matrix is badly conditioned (condition number 5e4 dense, 1.4e9 at 5 % filling);
   a minibatch first-order optimiser cannot resolve its weak directions, an exact solve over
   all frames does (R2 1.0000 with the true nonlinearities).
2. The solve is extremely sensitive to errors in the edge function and to the part of
   lin_phi that it cannot tell from the messages (u_i integrates its own input, so functions
   of u_i are nearly collinear with the messages): a 0.15 % rms error in the edge function
   costs R2 0.08 at 5 % filling.  Hence

   - :func:`joint_solve` solves W together with a per-neuron correction of the update in a
     cubic B-spline basis of u_i (``W_solve_phi_basis`` functions per neuron, see
     :func:`~connectome_gnn.models.bspline.column_basis`); the self term W_ii lin_edge(u_i) is
     part of it (the model masks W_ii) and moves into lin_phi;
   - :func:`fit_edge` fits lin_edge by *variable projection*: its loss is the data loss
     minimised over W and the per-neuron corrections (solved exactly on a subset of frames and
     receivers), and L-BFGS steps the edge parameters along its gradient (envelope theorem).
     The loss surface is flat (an edge function tanh(0.9 u) instead of tanh(u) raises the
     relative loss by 1e-7 at 5 % filling) but smooth; full-batch float64 sees it.

Everything runs in float64 on the training device, over chunks of frames (bounded memory).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..models.bspline import column_basis
from ..models.mlp import MLP
from ..models.spline import SplineEdge

#: frames per chunk of the statistics passes
CHUNK = 2000

#: the solver keys of the training config and their values when absent (train.schema.yaml)
DEFAULTS = {
    "W_solve": "none",
    "W_solve_frames": 20_000,
    "W_solve_phi_basis": 6,
    "W_solve_ridge": 1e-10,
    "W_solve_every": 0,
    "W_solve_lasso_steps": 500,
    "phi_fit_steps": 3000,
    "phi_fit_neighbours": 10,
    "edge_fit": "none",
    "edge_fit_iterations": 30,
    "edge_fit_coarse_knots": 16,
    "edge_fit_frames": 5000,
    "edge_fit_receivers": 200,
}


def settings(cfg: dict) -> dict:
    """The solver settings of a training config (defaults filled), checked across fields."""
    out = {k: cfg.get(k, v) for k, v in DEFAULTS.items()}
    k = int(out["W_solve_phi_basis"])
    if 0 < k < 4:
        raise ConfigError(
            f"field 'W_solve_phi_basis': {k}: a cubic B-spline basis has 0 or at least 4 functions"
        )
    if out["edge_fit"] != "none" and out["W_solve"] == "none":
        raise ConfigError("field 'edge_fit': varpro needs a W solver (set W_solve: lstsq)")
    if out["edge_fit"] != "none" and k == 0:
        raise ConfigError("field 'edge_fit': varpro needs W_solve_phi_basis >= 4")
    return out


def edge_fit_receivers(
    n: int, cfg: dict, seed: int, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """``edge_fit_receivers`` receivers of an edge fit, drawn with ``seed`` among the n neurons
    less ``exclude`` (neurons whose input is unknown), sorted."""
    pool = np.arange(n)
    if exclude is not None:
        pool = np.setdiff1d(pool, exclude.cpu().numpy())
    m = min(int(cfg["edge_fit_receivers"]), pool.size)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.sort(rng.choice(pool, m, replace=False)))


def solver_frames(n_frames: int, wanted: int) -> torch.Tensor:
    """``wanted`` frame indices spread evenly over the training frames (all if fewer)."""
    if wanted < 2:
        raise ConfigError(f"a W solve needs at least 2 frames, got {wanted}")
    if wanted >= n_frames:
        return torch.arange(n_frames)
    return torch.linspace(0, n_frames - 1, wanted).round().long()


@dataclass
class JointStats:
    """Sufficient statistics of the joint least-squares problem over T frames, for M receivers:
    G = E^T E (N x N), c = E^T y (N x M), H = E^T C (N x M x K), D = C^T C (M x K x K),
    d = C^T y (M x K), yy = y^T y (M), with E the senders' edge values, y the receivers'
    targets and C their per-neuron basis values (K = 0: no correction)."""

    G: torch.Tensor
    c: torch.Tensor
    H: torch.Tensor
    D: torch.Tensor
    d: torch.Tensor
    yy: torch.Tensor
    n_frames: int


def chunk_stats(e: torch.Tensor, y: torch.Tensor, cb: torch.Tensor | None) -> JointStats:
    """The statistics of one chunk: edge values ``e`` (T x N), targets ``y`` (T x M) and basis
    values ``cb`` (T x M x K, or None for no per-neuron correction), all float64."""
    t, n = e.shape
    m = y.shape[1]
    if cb is None:
        cb = torch.zeros(t, m, 0, dtype=e.dtype, device=e.device)
    k = cb.shape[2]
    return JointStats(
        G=e.T @ e,
        c=e.T @ y,
        H=(e.T @ cb.reshape(t, m * k)).reshape(n, m, k),
        D=torch.einsum("tik,til->ikl", cb, cb),
        d=torch.einsum("tik,ti->ik", cb, y),
        yy=(y * y).sum(0),
        n_frames=t,
    )


def accumulate(
    edges: Callable[[torch.Tensor], torch.Tensor],
    u: torch.Tensor,
    y: torch.Tensor,
    frames: torch.Tensor,
    receivers: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    n_basis: int,
) -> JointStats:
    """Statistics over ``frames`` of ``u`` (frames x N), in chunks: edge values
    ``edges(u_chunk)`` of every sender, targets ``y[:, receivers]`` and, with ``n_basis`` > 0,
    the per-neuron basis of the receivers' own activity over their ranges [lo, hi] (M,)."""
    frames = frames.to(u.device)
    receivers = receivers.to(u.device)
    total = None
    for start in range(0, len(frames), CHUNK):
        k = frames[start : start + CHUNK]
        uk = u[k]
        cb = column_basis(uk[:, receivers].double(), lo, hi, n_basis) if n_basis else None
        part = chunk_stats(edges(uk).double(), y[k][:, receivers].double(), cb)
        if total is None:
            total = part
        else:
            for name in ("G", "c", "H", "D", "d", "yy"):
                getattr(total, name).add_(getattr(part, name))
            total.n_frames += part.n_frames
    return total


def _cholesky(A: torch.Tensor) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise ConfigError(
            "field 'W_solve_ridge': the Gram matrix of the edge values is singular on the "
            "solver's frames (constant or duplicated neurons, or fewer frames than neurons); "
            "set W_solve_ridge > 0, e.g. 1e-8"
        )
    return L


class JointFactor:
    """The factorised normal equations of the joint problem (see :func:`joint_solve`), which
    solves further right-hand sides cheaply: one Cholesky of G (N x N) shared by every
    receiver, and per receiver the Cholesky of the K x K Schur complement of its basis block."""

    def __init__(self, stats: JointStats, ridge: float = 0.0):
        G = stats.G.clone()
        scale = float(G.diagonal().mean())
        if not math.isfinite(scale) or scale <= 0:
            raise ConfigError(
                "field 'W_solve': the edge values are zero or non-finite on the solver's frames"
            )
        G.diagonal().add_(ridge * scale)
        self.L = _cholesky(G)
        self.H = stats.H
        n, m, k = stats.H.shape
        self.shape = (n, m, k)
        if k:
            self.GH = torch.cholesky_solve(stats.H.reshape(n, m * k), self.L).reshape(n, m, k)
            S = stats.D - torch.einsum("jik,jil->ikl", stats.H, self.GH)
            # the basis of u_i and the sender column lin_edge(u_i) of the receiver itself can be
            # collinear (S nearly singular): only their sum matters (both go into lin_phi), so
            # a growing jitter picks a split
            level = S.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=1e-300)[:, None, None]
            eye = torch.eye(k, dtype=S.dtype, device=S.device)
            for jitter in (1e-12, 1e-10, 1e-8, 1e-6):
                self.S_L, info = torch.linalg.cholesky_ex(S + jitter * level * eye)
                if int(info.max()) == 0:
                    break
            else:
                raise ConfigError(
                    "field 'W_solve_phi_basis': the per-neuron basis is degenerate on the "
                    "solver's frames (a neuron whose activity barely moves); use fewer functions"
                )

    def solve(self, c: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients for right-hand sides c (N x M x R) and d (M x K x R): w (N x M x R) and
        beta (M x K x R)."""
        n, m, k = self.shape
        r = c.shape[2]
        Gc = torch.cholesky_solve(c.reshape(n, m * r), self.L).reshape(n, m, r)
        if not k:
            return Gc, torch.zeros(m, 0, r, dtype=c.dtype, device=c.device)
        rhs = d - torch.einsum("jik,jir->ikr", self.H, Gc)
        beta = torch.cholesky_solve(rhs, self.S_L)
        return Gc - torch.einsum("jik,ikr->jir", self.GH, beta), beta


def joint_solve(stats: JointStats, ridge: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Least squares of y_i on [E, C_i] for every receiver: W (M x N), the basis coefficients
    (M x K) and the mean squared residual per receiver (M; with the ridge penalty included),
    from the statistics alone.

    ``ridge`` adds ridge * mean(diag G) to the diagonal of G (a relative penalty on W).  The
    per-neuron block is eliminated by its Schur complement, so the cost is one Cholesky of the
    N x N matrix G, shared by all receivers.
    """
    w, beta = JointFactor(stats, ridge).solve(stats.c.unsqueeze(-1), stats.d.unsqueeze(-1))
    W, beta = w.squeeze(-1).T, beta.squeeze(-1)
    explained = (stats.c * W.T).sum(0) + (stats.d * beta).sum(1)
    mse = (stats.yy - explained).clamp(min=0.0) / stats.n_frames
    return W, beta, mse


def lasso_solve(
    stats: JointStats, l1: float, steps: int, W0: torch.Tensor | None = None, ridge: float = 0.0
) -> tuple[torch.Tensor, ...]:
    """The joint problem with an L1 penalty on W: per receiver, minimise
    (1 / (T N)) ||y_i - E w_i - C_i beta_i||^2 + l1 ||w_i||_1 (the trainer's mse data loss plus
    coeff_W_L1 ||W||_1, N the number of neurons); beta is unpenalised and eliminated exactly.
    FISTA (accelerated proximal gradient) with step 1 / lambda_max(G), ``steps`` iterations from
    ``W0`` (e.g. the least-squares solution) or zero.  Returns W, beta and the mean squared
    residual per receiver (without the penalty)."""
    n, m, k = stats.H.shape
    G = stats.G.clone()
    G.diagonal().add_(ridge * float(G.diagonal().mean()))
    if k:
        D_inv = torch.linalg.inv(
            stats.D
            + 1e-12
            * stats.D.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=1e-300)[:, None, None]
            * torch.eye(k, dtype=G.dtype, device=G.device)
        )
        z = torch.einsum("ikl,il->ik", D_inv, stats.d)
        b = stats.c.T - torch.einsum("jik,ik->ij", stats.H, z)  # M x N
    else:
        b = stats.c.T

    def grad(W):  # of 1/2 w^T A w - b^T w for every receiver, A = G - H D^-1 H^T
        out = W @ G - b
        if k:
            hw = torch.einsum("jik,ij->ik", stats.H, W)
            out = out - torch.einsum("jik,ik->ij", stats.H, torch.einsum("ikl,il->ik", D_inv, hw))
        return out

    lipschitz = float(torch.linalg.eigvalsh(G)[-1])
    thresh = 0.5 * l1 * stats.n_frames * n / lipschitz  # the penalty in units of the sums
    W = torch.zeros(m, n, dtype=G.dtype, device=G.device) if W0 is None else W0.to(G).clone()
    Y, t = W.clone(), 1.0
    for _ in range(int(steps)):
        step = Y - grad(Y) / lipschitz
        W_next = torch.sign(step) * torch.clamp(step.abs() - thresh, min=0.0)
        t_next = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
        Y = W_next + ((t - 1) / t_next) * (W_next - W)
        W, t = W_next, t_next
    if k:
        beta = torch.einsum("ikl,il->ik", D_inv, stats.d - torch.einsum("jik,ij->ik", stats.H, W))
    else:
        beta = torch.zeros(m, 0, dtype=G.dtype, device=G.device)
    # ||y - E w - C beta||^2 from the statistics
    quad = (W @ stats.G * W).sum(1) + 2 * torch.einsum("jik,ij,ik->i", stats.H, W, beta)
    quad = quad + torch.einsum("ik,ikl,il->i", beta, stats.D, beta)
    lin = (stats.c.T * W).sum(1) + (stats.d * beta).sum(1)
    mse = (stats.yy - 2 * lin + quad).clamp(min=0.0) / stats.n_frames
    return W, beta, mse


def residual_grad(
    edges_out: torch.Tensor,
    y: torch.Tensor,
    W: torch.Tensor,
    beta: torch.Tensor,
    cb: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual r = y - E W^T - C beta of one chunk, and d(sum r^2)/dE = -2 r W."""
    pred = edges_out @ W.T
    if cb is not None and beta.shape[1]:
        pred = pred + torch.einsum("tik,ik->ti", cb, beta)
    r = y - pred
    return r, -2.0 * r @ W


@contextmanager
def double_edge(model):
    """The model with a float64 copy of lin_edge (for the fits); copied back on success."""
    original = model.lin_edge
    work = copy.deepcopy(original).double().requires_grad_(True)
    model.lin_edge = work
    try:
        yield work
    finally:
        model.lin_edge = original
    with torch.no_grad():
        for p, q in zip(original.parameters(), work.parameters(), strict=True):
            p.copy_(q.to(p.dtype))


def activity_ranges(u: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron range of the activity over ``frames`` (slightly widened), float64."""
    lo = torch.full((u.shape[1],), math.inf, dtype=torch.float64, device=u.device)
    hi = -lo
    for start in range(0, len(frames), CHUNK):
        uk = u[frames[start : start + CHUNK].to(u.device)].double()
        lo = torch.minimum(lo, uk.min(0).values)
        hi = torch.maximum(hi, uk.max(0).values)
    pad = 1e-3 * (hi - lo).clamp(min=1e-6)
    return lo - pad, hi + pad


#: frames per chunk of the Jacobian passes of the spline fit (B-spline design T x N x knots)
JACOBIAN_CHUNK = 100


@torch.no_grad()
def _normalise_spline(edge: SplineEdge, u: torch.Tensor) -> None:
    """The gauge of a spline edge function (see :func:`fit_edge`): value 0 at u = 0, unit RMS
    over the activity ``u``."""
    edge.weight.sub_(edge(torch.zeros(1, 1, dtype=u.dtype, device=u.device)).reshape(()))
    edge.weight.div_(edge(u.reshape(-1, 1)).pow(2).mean().sqrt().clamp(min=1e-300))


@torch.no_grad()
def fit_spline_lm(
    edge: SplineEdge,
    uk: torch.Tensor,
    yk: torch.Tensor,
    receivers: torch.Tensor,
    cb: torch.Tensor | None,
    iterations: int,
    ridge: float,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Levenberg-Marquardt on the coefficients of a spline edge function (float64), for the
    variable-projection loss of the joint problem on frames ``uk`` (T x N), targets ``yk``
    (T x M) of ``receivers`` and their basis values ``cb``.

    The edge function is linear in its coefficients theta, so the Jacobian of the residual of
    receiver i is -P_i Z_i, Z_i[:, l] = B_l(u) w_i (the edge basis weighted by the receiver's
    solved weights) and P_i the projection off the span of its regressors [E, C_i] (Kaufman's
    form of the variable-projection Jacobian).  J^T J (knots x knots) comes from the same
    factorisation as the solve.  Returns the relative loss after every accepted step."""
    T, n = uk.shape
    m = yk.shape[1]
    var = float(yk.var()) or 1.0
    k_phi = 0 if cb is None else cb.shape[2]
    _normalise_spline(edge, uk)

    def evaluate():
        e = edge(uk.unsqueeze(-1)).squeeze(-1)
        stats = chunk_stats(e, yk, cb)
        factor = JointFactor(stats, ridge)
        w, beta = factor.solve(stats.c.unsqueeze(-1), stats.d.unsqueeze(-1))
        W, beta = w.squeeze(-1).T, beta.squeeze(-1)
        loss = float((stats.yy - (stats.c * W.T).sum(0) - (stats.d * beta).sum(1)).sum())
        return e, W, beta, factor, max(loss, 0.0)

    e, W, beta, factor, loss = evaluate()
    history = [loss / (T * m * var)]
    mu = 1e-3
    kk = edge.n_knots
    for it in range(int(iterations)):
        r, _ = residual_grad(e, yk, W, beta, cb)
        ZtZ = torch.zeros(kk, kk, dtype=uk.dtype, device=uk.device)
        Ztr = torch.zeros(kk, dtype=uk.dtype, device=uk.device)
        EtZ = torch.zeros(n, kk * m, dtype=uk.dtype, device=uk.device)
        CtZ = torch.zeros(m, k_phi, kk, dtype=uk.dtype, device=uk.device)
        for a in range(0, T, JACOBIAN_CHUNK):
            b = min(a + JACOBIAN_CHUNK, T)
            B = edge.design(uk[a:b])  # t x N x knots
            Z = B.transpose(1, 2) @ W.T  # t x knots x M
            Zf = Z.reshape(b - a, kk * m)
            ZtZ += torch.einsum("tli,tmi->lm", Z, Z)
            Ztr += torch.einsum("tli,ti->l", Z, r[a:b])
            EtZ += e[a:b].T @ Zf
            if k_phi:
                CtZ += torch.einsum("tik,tli->ikl", cb[a:b], Z)
        EtZ = EtZ.reshape(n, kk, m).transpose(1, 2)  # N x M x knots
        pw, pb = factor.solve(EtZ, CtZ)
        JtJ = ZtZ - torch.einsum("jil,jim->lm", EtZ, pw) - torch.einsum("ikl,ikm->lm", CtZ, pb)
        JtJ = 0.5 * (JtJ + JtJ.T)
        theta = edge.weight.detach().clone()
        for _ in range(12):  # Levenberg-Marquardt: raise the damping until the loss drops
            A = JtJ + mu * torch.diag(
                JtJ.diagonal().clamp(min=1e-300 + 1e-12 * float(JtJ.diagonal().max()))
            )
            delta = torch.linalg.solve(A, Ztr)
            edge.weight.copy_(theta + delta)
            _normalise_spline(edge, uk)
            trial = evaluate()
            if trial[4] < loss:
                e, W, beta, factor, loss = trial
                mu = max(mu / 3, 1e-9)
                break
            mu *= 4
        else:
            edge.weight.copy_(theta)
            break
        history.append(loss / (T * m * var))
        if log:
            log(f"edge fit (LM, {kk} knots): step {it + 1}, relative loss {history[-1]:.4e}")
        if history[-1] < 1e-14 or history[-1] > history[-2] * (1 - 1e-4):
            break
    return history


@torch.no_grad()
def center_edge(model) -> None:
    """Shift lin_edge so that lin_edge(0) = 0.  The offset of the edge function is not
    determined by the data (sum_j W_ij b is a constant per receiver that the update absorbs);
    without this choice neurons of one type would get update curves that differ by constants."""
    if model.lin_edge_positive:
        return
    offset = float(model.edge(torch.zeros(1, 1, device=model.W.device)).reshape(-1)[0])
    module = model.lin_edge
    if isinstance(module, SplineEdge):  # its basis sums to one
        module.weight.sub_(offset)
    elif isinstance(module, MLP):
        module.layers[-1].bias.sub_(offset)


@torch.no_grad()
def _project_spline(source: SplineEdge, target: SplineEdge, u: torch.Tensor) -> None:
    """Least-squares fit of ``target``'s coefficients to ``source`` over the activity values
    ``u`` and a grid over the whole range (so that no coefficient is left undetermined)."""
    z_max = float(-target.z_lo)
    grid = target.scale * torch.sinh(
        torch.linspace(-z_max, z_max, 8 * target.n_knots, dtype=u.dtype, device=u.device)
    )
    pts = torch.cat([u.reshape(-1)[:: max(1, u.numel() // 50_000)], grid])
    D = target.design(pts)
    A = D.T @ D
    A.diagonal().add_(1e-10 * float(A.diagonal().mean()))
    target.weight.copy_(torch.linalg.solve(A, D.T @ source(pts.unsqueeze(-1)).squeeze(-1)))


#: shapes the spline edge fit may start from, at the activity's scale sigma (std of u): the
#: variable-projection loss is not convex in the edge function, and from a linear start the fit
#: can stall (N = 50, 10 % filling: relative loss 0.019 from u, 4e-5 from tanh(u / sigma))
START_SHAPES = ("linear", "relu", "tanh/0.25", "tanh/0.5", "tanh/1", "tanh/2")


def start_shape(name: str, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """A START_SHAPES shape at activity ``u``: u / sigma, relu(u) / sigma or tanh(u / (c sigma))."""
    if name == "linear":
        return u / sigma
    if name == "relu":
        return torch.relu(u) / sigma
    return torch.tanh(u / (float(name.split("/")[1]) * sigma))


@torch.no_grad()
def best_start(
    edge: SplineEdge, u: torch.Tensor, loss: Callable[[SplineEdge], float]
) -> tuple[str, float]:
    """Set ``edge`` to the START_SHAPES shape (projected on the spline, at the scale of the
    activity ``u``) of the lowest ``loss(edge)``; returns its name.  ``loss`` may re-gauge the
    edge in place: the weights kept are those it was evaluated with.  Returns the shape's name
    and its loss."""
    sigma = float(u.std()) or 1.0
    z_max = float(-edge.z_lo)
    grid = edge.scale * torch.sinh(
        torch.linspace(-z_max, z_max, 8 * edge.n_knots, dtype=torch.float64, device=u.device)
    )
    D = edge.design(grid)
    A = D.T @ D
    A.diagonal().add_(1e-10 * float(A.diagonal().mean()))
    best = (math.inf, None, None)
    for name in START_SHAPES:
        edge.weight.copy_(torch.linalg.solve(A, D.T @ start_shape(name, grid, sigma)))
        value = loss(edge)
        if value < best[0]:
            best = (value, name, edge.weight.clone())
    edge.weight.copy_(best[2])
    return best[1], best[0]


def _best_start(edge: SplineEdge, uk, yk, cb, ridge: float) -> str:
    """Set ``edge`` to the START_SHAPES shape of the lowest variable-projection loss."""

    def loss(edge):
        _normalise_spline(edge, uk)
        e = edge(uk.unsqueeze(-1)).squeeze(-1)
        return float(joint_solve(chunk_stats(e, yk, cb), ridge)[2].sum())

    return best_start(edge, uk, loss)[0]


def lbfgs(params: list[torch.Tensor], evaluations: int) -> torch.optim.LBFGS:
    """L-BFGS with a strong-Wolfe line search that stops after ``evaluations`` loss
    evaluations and never earlier (the variable-projection losses are tiny and flat)."""
    return torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=evaluations,
        max_eval=evaluations,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )


def _fit_by_lbfgs(model, uk, yk, cb, cfg, log) -> list[float]:
    """Variable projection with L-BFGS on any lin_edge (e.g. an MLP): the loss and its gradient
    by the envelope theorem (W and the basis coefficients are at their optimum)."""
    scale = float(yk.var()) or 1.0
    history: list[float] = []
    with double_edge(model) as edge_module:
        params = [p for p in edge_module.parameters() if p.requires_grad]
        opt = lbfgs(params, int(cfg["edge_fit_iterations"]))
        zero = torch.zeros(1, 1, dtype=torch.float64, device=uk.device)

        def closure():
            opt.zero_grad()
            # the loss does not change with the offset and scale of the edge function (W and
            # the per-neuron basis absorb them): fix both, so that L-BFGS does not drift along them
            raw = model.edge(uk)
            centred = raw - model.edge(zero).reshape(())
            e = centred / centred.pow(2).mean().sqrt()
            with torch.no_grad():
                W, beta, mse = joint_solve(chunk_stats(e, yk, cb), float(cfg["W_solve_ridge"]))
                _, grad_e = residual_grad(e, yk, W, beta, cb)
            # loss relative to the target variance, x 1e5 so that L-BFGS sees O(1) numbers
            e.backward(grad_e * (1e5 / (scale * yk.numel())))
            value = float(mse.mean()) / scale
            history.append(value)
            if log and len(history) % 20 == 0:
                log(f"edge fit (L-BFGS): {len(history)} evaluations, relative loss {value:.4e}")
            return torch.tensor(value * 1e5, dtype=torch.float64)

        opt.step(closure)
    return history


def fit_edge(
    model,
    u: torch.Tensor,
    du: torch.Tensor,
    cfg: dict,
    seed: int,
    log: Callable[[str], None] | None = None,
    exclude: torch.Tensor | None = None,
) -> dict:
    """Variable-projection fit of lin_edge (``edge_fit: varpro``); returns what it did.
    Receivers in ``exclude`` (neurons whose input is unknown) are never used.

    On ``edge_fit_frames`` evenly spread training frames and ``edge_fit_receivers`` random
    receivers, the loss of an edge function is the mean squared residual of the joint solve
    (W and ``W_solve_phi_basis`` basis functions per receiver, solved exactly).

    - A spline lin_edge: Levenberg-Marquardt (:func:`fit_spline_lm`), first on a coarse spline
      of ``edge_fit_coarse_knots`` coefficients (the shape, cheaply), then on the model's own
      knots, ``edge_fit_iterations`` steps each at most;
    - any other lin_edge: L-BFGS with ``edge_fit_iterations`` evaluations.

    The edge function is then centred (lin_edge(0) = 0)."""
    t0 = time.perf_counter()
    n_frames, n = u.shape
    frames = solver_frames(n_frames, int(cfg["edge_fit_frames"]))
    receivers = edge_fit_receivers(n, cfg, seed, exclude).to(u.device)
    k = int(cfg["W_solve_phi_basis"])
    lo, hi = activity_ranges(u, frames)
    uk = u[frames.to(u.device)].double()
    yk = du[frames.to(u.device)][:, receivers].double()
    cb = column_basis(uk[:, receivers], lo[receivers], hi[receivers], k) if k else None
    ridge = float(cfg["W_solve_ridge"])
    iterations = int(cfg["edge_fit_iterations"])
    if isinstance(model.lin_edge, SplineEdge) and not model.lin_edge_positive:
        with double_edge(model) as edge:
            coarse = SplineEdge(int(cfg["edge_fit_coarse_knots"]), 1.0, 1.0).double().to(u.device)
            coarse.scale.copy_(edge.scale)
            coarse.z_lo.copy_(edge.z_lo)
            coarse.h.copy_(-2 * edge.z_lo / (coarse.n_knots - 3))
            start = _best_start(coarse, uk, yk, cb, ridge)
            history = fit_spline_lm(coarse, uk, yk, receivers, cb, iterations, ridge, log)
            _project_spline(coarse, edge, uk)
            if edge.n_knots != coarse.n_knots:  # the fine stage (same knots: already done)
                history += fit_spline_lm(edge, uk, yk, receivers, cb, iterations, ridge, log)
        method = f"levenberg-marquardt from {start}"
    else:
        history = _fit_by_lbfgs(model, uk, yk, cb, cfg, log)
        method = "l-bfgs"
    center_edge(model)
    return {
        "edge_fit_method": method,
        "edge_fit_steps": len(history),
        "edge_fit_loss_start": history[0] if history else None,
        "edge_fit_loss": history[-1] if history else None,
        "edge_fit_s": time.perf_counter() - t0,
    }


def curve_ranges(u: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The 1 %-99 % quantiles of every neuron's activity over ``frames`` (2 x N, float64): the
    range over which its solved update curve is trusted."""
    q = torch.tensor([0.01, 0.99], dtype=torch.float64, device=u.device)
    return torch.quantile(u[frames.to(u.device)].double(), q, dim=0)


@torch.no_grad()
def curve_values(
    model,
    pts: torch.Tensor,
    W_diag: torch.Tensor,
    beta: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> torch.Tensor:
    """Each neuron's solved update curve at ``pts`` (P x N): the basis correction of the joint
    solve + W_ii lin_edge(u), float64."""
    values = torch.einsum("pnk,nk->pn", column_basis(pts, lo, hi, beta.shape[1]), beta)
    return values + W_diag[None, :] * model.edge(pts.to(model.W.dtype)).double()


def update_curves(
    model,
    ranges: torch.Tensor,
    W_diag: torch.Tensor,
    beta: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    n_points: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The update each neuron needs according to a joint solve (:func:`curve_values`), on a grid
    of its own activity range (``ranges``, :func:`curve_ranges`).
    Returns (grid, values), both n_points x N, float32 (lin_phi is fitted to them)."""
    t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64, device=ranges.device)[:, None]
    grid = ranges[0] + (ranges[1] - ranges[0]).clamp(min=1e-6) * t
    values = curve_values(model, grid, W_diag, beta, lo, hi)
    return grid.float(), values.float()


#: weight of the pull of each neuron's embedding towards those of its curve neighbours in
#: :func:`fit_phi` (relative to the fit loss, itself relative to the variance of the curves)
COHESION = 1e-2


@torch.no_grad()
def curve_neighbours(
    model,
    ranges: torch.Tensor,
    W_diag: torch.Tensor,
    beta: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    k: int,
    n_points: int = 64,
) -> torch.Tensor:
    """For every neuron, the ``k`` neurons whose solved update curves are closest (N x k).

    Each neuron's update curve (:func:`curve_values`) is known only over its own activity range
    (``ranges``, :func:`curve_ranges`).  On ``n_points`` values spanning all ranges, the
    distance of two neurons is the mean squared difference of their curves where both are
    known; pairs with fewer than 4 common points are never neighbours.
    (Dense N = 1000: every neuron's nearest neighbour is of its own type.)"""
    n = ranges.shape[1]
    lo_all, hi_all = float(ranges[0].min()), float(ranges[1].max())
    pts = torch.linspace(lo_all, hi_all, n_points, dtype=torch.float64, device=ranges.device)
    pts = pts[:, None].expand(n_points, n)
    mask = ((pts >= ranges[0]) & (pts <= ranges[1])).double()  # P x N
    f = curve_values(model, pts, W_diag, beta, lo, hi) * mask
    common = mask.T @ mask
    d = (mask.T @ f**2) + (f**2).T @ mask - 2.0 * f.T @ f  # summed over the common points
    d = (d / common.clamp(min=1)).clamp(min=0.0)
    d[common < 4] = math.inf
    d.fill_diagonal_(math.inf)
    return d.topk(min(k, n - 1), dim=1, largest=False).indices


def fit_phi(
    model,
    grid: torch.Tensor,
    values: torch.Tensor,
    cfg: dict,
    neighbours: torch.Tensor | None = None,
) -> dict:
    """Fit lin_phi and the embeddings to per-neuron update curves: full batch, Adam at the rate
    lr for both (a faster embedding rate lets the embeddings absorb per-neuron detail and
    blurs the types: cluster accuracy 0.70 at 10 x lr on N = 100, 1.00 at lr), with a cosine
    decay to 1/50 over ``phi_fit_steps`` steps.

    With ``neighbours`` (N x k, :func:`curve_neighbours`) the loss has a term COHESION x the
    mean squared distance of each embedding to those of its neighbours: the fit alone leaves
    where the embeddings of a type settle to the optimiser's path (dense N = 1000 from a common
    start, cluster_accuracy 0.64 / 0.97 / 0.99 at lr 3e-3 / 2e-3 / 1e-3, at similar losses)."""
    t0 = time.perf_counter()
    steps = int(cfg["phi_fit_steps"])
    opt = torch.optim.Adam(
        [
            {"params": list(model.lin_phi.parameters()), "lr": float(cfg["lr"])},
            {"params": [model.a], "lr": float(cfg["lr"])},
        ]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=0.0)
    base = [g["lr"] for g in opt.param_groups]
    target_var = float(values.var()) or 1.0
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = ((model.phi(grid) - values) ** 2).mean()
        total = loss / target_var
        if neighbours is not None:
            total = total + COHESION * (model.a[:, None, :] - model.a[neighbours]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sched.step()
        for group, lr0 in zip(opt.param_groups, base, strict=True):
            group["lr"] = max(group["lr"], lr0 / 50)
    return {
        "phi_fit_loss": float(loss.detach()) / target_var,
        "phi_fit_s": time.perf_counter() - t0,
    }


def solve_W(model, u: torch.Tensor, du: torch.Tensor, cfg: dict, x_in=None) -> dict:
    """Set the model's W by an exact solve on ``W_solve_frames`` evenly spread training frames.

    With ``W_solve_phi_basis`` K > 0 the solve is joint with K basis functions of u_i per
    receiver (lin_phi is then refitted to the curves they give, :func:`fit_phi`); with K = 0
    the targets are du - lin_phi(u) of the current model.  An external input ``x_in`` (known,
    or the model's learned field: anything indexed by frames) is subtracted from du first.
    Returns what it did."""
    t0 = time.perf_counter()
    n_frames, n = u.shape
    frames = solver_frames(n_frames, int(cfg["W_solve_frames"]))
    k = int(cfg["W_solve_phi_basis"])
    lo, hi = activity_ranges(u, frames)
    everyone = torch.arange(n)
    with torch.no_grad():
        target = du
        if x_in is not None:
            from .field_fit import input_free_target

            target = input_free_target(du, x_in, frames)
        if not k:  # the part of du/dt that the messages must explain, for the current lin_phi
            target = target.clone() if target is du else target
            for start in range(0, len(frames), CHUNK):
                idx = frames[start : start + CHUNK].to(u.device)
                target[idx] = target[idx] - model.phi(u[idx])
        stats = accumulate(model.edge, u, target, frames, everyone, lo, hi, k)
        W, beta, mse = joint_solve(stats, float(cfg["W_solve_ridge"]))
        if cfg["W_solve"] == "lasso":
            W, beta, mse = lasso_solve(
                stats,
                float(cfg["coeff_W_L1"]),
                int(cfg["W_solve_lasso_steps"]),
                W,
                float(cfg["W_solve_ridge"]),
            )
        if not torch.isfinite(W).all():
            raise ConfigError(
                "field 'W_solve_ridge': the W solve gave non-finite weights (an ill-posed "
                "solve); set W_solve_ridge > 0"
            )
        W_diag = W.diagonal().clone()
        model.set_effective_W(W.to(model.W.dtype))
    info = {"W_solve_s": time.perf_counter() - t0, "W_solve_mse": float(mse.mean())}
    if k:
        ranges = curve_ranges(u, frames)
        grid, values = update_curves(model, ranges, W_diag, beta, lo, hi)
        nb = int(cfg["phi_fit_neighbours"])
        neighbours = curve_neighbours(model, ranges, W_diag, beta, lo, hi, nb) if nb else None
        info.update(fit_phi(model, grid, values, cfg, neighbours))
    return info
