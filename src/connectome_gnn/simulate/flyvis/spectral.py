"""Spectral maths of the FlyVis type graph on the infinite hexagonal lattice.

- :class:`TypeStructure` (:func:`type_structure`, cached per connectome file): the
  extent-independent quantities of the connectome that the parameter draw needs: per type pair
  sign, source, target, mean synapse count and fan-in; the k = 0 Bloch matrix of a 3 x 2-column
  unit cell (one COO entry per pair, offset and position); the extent-8 edges grouped by
  (pair, du, dv) for fast weight statistics.
- Spectral radii of non-negative matrices (:class:`PerronSolver`, :func:`perron_root`) and of W+
  on the lattice (:func:`rho_exc`, :func:`excitatory_spectral_radius`).
- The linearised grey state: :func:`net_input`, :func:`bloch_entries`,
  :func:`linear_abscissa`, and :func:`stabilize`, which weakens the pairs of the unstable modes.

Per-pair magnitudes ``mags`` are a pair's mean |w| over its filter
(``strength * pair_mean_n_syn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .connectome import PHOTORECEPTORS, build_connectome, pair_filters, read_connectome_json

#: extent of the reference weight statistics (and of the edge groups of :class:`TypeStructure`)
CALIBRATION_EXTENT = 8
# version 3: the grey operating point V* must be linearly stable (largest real part of the
# eigenvalues of W diag(ReLU'(V*)) for uniform perturbations at most this); every drawn set of
# version 2 had it between 1.4 and 10, so the network left V* for a state in which a quarter of
# the neurons barely moved
LINEAR_ABSCISSA_MAX = 0.9
STABILIZE_MAX_STEPS = 200


class PerronSolver:
    """Spectral radius of non-negative matrices with a fixed sparsity pattern (COO rows, cols).

    Each strongly connected block of the pattern is irreducible, so power iteration on
    ``block + I`` converges and the Collatz-Wielandt ratios bracket the block's Perron root; the
    largest upper bound (tight within ``rtol``) over blocks is returned.  The eigenvectors are
    kept between calls (warm start), which makes repeated calls with slowly changing values cheap.
    No dense eigen-decomposition (slow and thread-hungry on a shared machine).
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, n: int):
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        pattern = csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
        n_comp, label = connected_components(pattern, directed=True, connection="strong")
        size = np.bincount(label, minlength=n_comp)
        self.self_loops = np.flatnonzero((rows == cols) & (size[label[rows]] == 1))
        self.blocks = []
        for c in np.flatnonzero(size > 1):
            members = np.flatnonzero(label == c)
            local = np.full(n, -1)
            local[members] = np.arange(members.size)
            inside = np.flatnonzero((label[rows] == c) & (label[cols] == c))
            self.blocks.append(
                (
                    members.size,
                    inside,
                    local[rows[inside]],
                    local[cols[inside]],
                    np.ones(members.size),
                )
            )

    def __call__(self, values: np.ndarray, rtol: float = 1e-6, max_iter: int = 20_000) -> float:
        values = np.asarray(values, dtype=np.float64)
        best = float(values[self.self_loops].max()) if self.self_loops.size else 0.0
        for k, (size, entries, r, c, x) in enumerate(self.blocks):
            block = np.zeros((size, size))
            np.add.at(block, (r, c), values[entries])
            if not block.any():
                continue
            x = np.where(x > 0, x, 1.0)
            upper = np.inf
            for _ in range(max_iter):
                y = block @ x + x
                ratio = y / x
                lower, upper = ratio.min() - 1.0, ratio.max() - 1.0
                x = y / y.max()
                if upper - lower <= rtol * max(upper, 1e-12):
                    break
            self.blocks[k] = (size, entries, r, c, x)
            best = max(best, float(upper))
        return best


def perron_root(m: np.ndarray, rtol: float = 1e-7) -> float:
    """Spectral radius of a dense non-negative square matrix (see :class:`PerronSolver`)."""
    m = np.asarray(m, dtype=np.float64)
    rows, cols = np.nonzero(m)
    return PerronSolver(rows, cols, m.shape[0])(m[rows, cols], rtol=rtol)


# ----------------------------------------------------------------------------- type structure


@dataclass(frozen=True, eq=False)
class TypeStructure:
    """Extent-independent quantities of the connectome JSON needed to draw parameters."""

    n_types: int
    photoreceptor: np.ndarray  # (n_types,) bool: R1-R8, where the stimulus enters
    pair_sign: np.ndarray
    pair_source: np.ndarray
    pair_target: np.ndarray
    pair_mean_n_syn: np.ndarray  # mean n_syn over each pair's (hull-filled) filter
    pair_fanin: np.ndarray  # mean number of edges of the pair onto one target neuron (weighted)
    recurrent_exc: np.ndarray  # excitatory pairs inside a strongly connected type component
    # k = 0 Bloch matrix of the 3 x 2-column unit cell: one COO entry per (pair, offset, position)
    cell_type: np.ndarray
    cell_rows: np.ndarray
    cell_cols: np.ndarray
    cell_pair: np.ndarray
    cell_coef: np.ndarray  # n_syn / pair_mean_n_syn
    # extent-8 edges grouped by (pair, du, dv): pair, n_syn / pair mean, sign, edge count
    group_pair: np.ndarray
    group_ratio: np.ndarray
    group_sign: np.ndarray
    group_weight: np.ndarray  # edge count / total edges

    @property
    def n_cell(self) -> int:
        return int(self.cell_type.size)


@cache
def type_structure(json_path: str | None = None) -> TypeStructure:
    """The :class:`TypeStructure` of the connectome file ``json_path`` (default: flyvis')."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    data = read_connectome_json(json_path)
    filters = pair_filters(data)
    con8 = build_connectome(CALIBRATION_EXTENT, json_path=json_path)
    n_types = con8.n_types
    sign = np.array([f.sign for f in filters], dtype=np.int64)
    src = np.array([f.source_type for f in filters], dtype=np.int64)
    tar = np.array([f.target_type for f in filters], dtype=np.int64)
    pmean = np.array([f.mean_n_syn for f in filters])

    exc = sign > 0
    adj = csr_matrix((np.ones(exc.sum()), (tar[exc], src[exc])), shape=(n_types, n_types))
    _, label = connected_components(adj, directed=True, connection="strong")
    recurrent = exc & (label[src] == label[tar])

    # unit cell of 3 x 2 columns: node (type, a, b) where a % su == 0 and b % sv == 0
    stride = con8.type_stride
    cell: dict[tuple[int, int, int], int] = {}
    for t in range(n_types):
        for a in range(3):
            for b in range(2):
                if a % stride[t, 0] == 0 and b % stride[t, 1] == 0:
                    cell[(t, a, b)] = len(cell)
    cell_type = np.array([t for t, _, _ in cell], dtype=np.int64)
    rows, cols, pairs, coefs = [], [], [], []
    for p, f in enumerate(filters):
        for (du, dv), ns in zip(f.offsets, f.n_syn, strict=True):
            for a in range(3):
                for b in range(2):
                    i = cell.get((f.source_type, a, b))
                    j = cell.get((f.target_type, (a + int(du)) % 3, (b + int(dv)) % 2))
                    if i is not None and j is not None:
                        rows.append(j)
                        cols.append(i)
                        pairs.append(p)
                        coefs.append(ns / pmean[p])
    cell_pair = np.array(pairs, dtype=np.int64)
    cell_coef = np.array(coefs)
    per_type = np.bincount(cell_type, minlength=n_types).astype(np.float64)
    fanin = np.bincount(cell_pair, weights=cell_coef, minlength=len(filters)) / per_type[tar]

    group = con8.edge_group
    first = np.unique(group, return_index=True)[1]
    gpair = con8.edge_pair[first].astype(np.int64)
    count = np.bincount(group).astype(np.float64)
    return TypeStructure(
        n_types=n_types,
        photoreceptor=np.isin(con8.type_names, PHOTORECEPTORS),
        pair_sign=sign,
        pair_source=src,
        pair_target=tar,
        pair_mean_n_syn=pmean,
        pair_fanin=fanin,
        recurrent_exc=recurrent,
        cell_type=cell_type,
        cell_rows=np.array(rows, dtype=np.int64),
        cell_cols=np.array(cols, dtype=np.int64),
        cell_pair=cell_pair,
        cell_coef=cell_coef,
        group_pair=gpair,
        group_ratio=con8.edge_n_syn[first].astype(np.float64) / pmean[gpair],
        group_sign=con8.edge_sign[first].astype(np.float64),
        group_weight=count / count.sum(),
    )


def rho_exc(st: TypeStructure, mags: np.ndarray) -> float:
    """Spectral radius of W+ on the infinite lattice for per-pair mean magnitudes ``mags``."""
    sel = (st.pair_sign[st.cell_pair] > 0) & (mags[st.cell_pair] > 0)
    solver = PerronSolver(st.cell_rows[sel], st.cell_cols[sel], st.n_cell)
    return solver(mags[st.cell_pair[sel]] * st.cell_coef[sel], rtol=1e-6)


def net_input(st: TypeStructure, mags: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per type, the mean synaptic input at per-type voltages ``v`` on the infinite lattice."""
    w = st.pair_sign[st.cell_pair] * mags[st.cell_pair] * st.cell_coef
    r = np.maximum(v, 0.0)[st.cell_type[st.cell_cols]]
    per_cell = np.bincount(st.cell_rows, weights=w * r, minlength=st.n_cell)
    per_type = np.bincount(st.cell_type, minlength=st.n_types)
    return np.bincount(st.cell_type, weights=per_cell, minlength=st.n_types) / per_type


def bloch_entries(st: TypeStructure, mags: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Entries (at st.cell_rows, st.cell_cols) of the k = 0 Bloch matrix of W diag(ReLU'(V)) at
    per-type voltages ``v``: the linearised synaptic feedback of uniform perturbations."""
    on = (np.asarray(v) > 0)[st.cell_type[st.cell_cols]]
    return st.pair_sign[st.cell_pair] * mags[st.cell_pair] * st.cell_coef * on


def _dense(st: TypeStructure, entries: np.ndarray) -> np.ndarray:
    m = np.zeros((st.n_cell, st.n_cell))
    np.add.at(m, (st.cell_rows, st.cell_cols), entries)
    return m


def linear_abscissa(st: TypeStructure, mags: np.ndarray, v: np.ndarray) -> float:
    """Largest real part of the eigenvalues of W diag(ReLU'(v)) for uniform perturbations on the
    infinite lattice.  With equal tau, the fixed point at ``v`` is linearly stable (against
    uniform perturbations) exactly when this is below 1; per-type tau move that boundary, so
    :func:`.acceptance.check_params` confirms stability by simulation."""
    return float(np.linalg.eigvals(_dense(st, bloch_entries(st, mags, v))).real.max())


def stabilize(
    st: TypeStructure, mags: np.ndarray, v: np.ndarray, target: float = LINEAR_ABSCISSA_MAX
) -> tuple[np.ndarray, int]:
    """Weaken the pairs that make the fixed point at ``v`` unstable until the linear abscissa is
    at most ``target``.  Each step takes the leading eigenvalue lambda of the k = 0 Bloch matrix
    and its left/right eigenvectors, computes d lambda / d log(strength) of every pair and scales
    the destabilising pairs (positive derivative) down along that gradient, by the first-order
    step that reaches ``target`` (at most x0.5 per pair and step).  Pairs that do not take part in
    the unstable mode keep their strength."""
    from scipy.linalg import eig

    mags = mags.copy()
    n_pairs = mags.size
    for it in range(STABILIZE_MAX_STEPS):
        entries = bloch_entries(st, mags, v)
        vals, left, right = eig(_dense(st, entries), left=True, right=True)
        j = int(np.argmax(vals.real))
        lam = float(vals[j].real)
        if lam <= target:
            return mags, it
        lv, rv = left[:, j].conj(), right[:, j]
        norm = lv @ rv
        sens = (lv[st.cell_rows] * entries * rv[st.cell_cols] / norm).real
        grad = np.clip(np.bincount(st.cell_pair, weights=sens, minlength=n_pairs), 0.0, None)
        g2 = float((grad**2).sum())
        if g2 <= 0:
            break
        eta = (lam - 0.98 * target) / g2
        mags = mags * np.exp(-np.minimum(eta * grad, np.log(2.0)))
    raise RuntimeError(f"could not stabilise the grey state (linear abscissa {lam:.3f})")


def excitatory_spectral_radius(strength: np.ndarray, json_path: str | None = None) -> float:
    """Spectral radius of W+ (the excitatory weights) on the infinite lattice.

    It bounds the spectral radius of W+ at every finite extent; below 1 the dynamics is bounded.
    """
    st = type_structure(json_path)
    return rho_exc(st, np.asarray(strength) * st.pair_mean_n_syn)
