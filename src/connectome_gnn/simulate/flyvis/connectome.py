"""The fly visual system connectome on a hexagonal lattice (numpy re-implementation).

The cell types, their type-to-type connections, the synapse signs and the average
convolutional filters (``offsets``) come from ``fib25-fib19_v2.2.json`` shipped with the MIT
package ``flyvis`` 1.2.0 (Lappalainen et al., Nature 2024).  The file is read at run time from the
installed package (``pip install --no-deps flyvis==1.2.0``); flyvis itself is never imported.

Construction (identical to flyvis' ``ConnectomeFromAvgFilters(extent, n_syn_fill=1)``):

* **Columns**: axial hex coordinates ``(u, v)`` with ``|u|, |v|, |u + v| <= extent``, ordered by
  ``u`` then ``v`` (3e(e+1)+1 columns; 217 at extent 8).
* **Nodes**: for each cell type in file order, one neuron at every column whose coordinates are
  multiples of the type's stride (1 x 1 for 63 types; 3 x 2 for Lawf1 and Lawf2, Python modulo).
  Neurons are numbered type by type, then by column.
* **Edges**: for each type pair in file order, for each offset ``(du, dv)`` in list order, for each
  source neuron in node order, an edge to the target-type neuron at ``(u + du, v + dv)`` if it
  exists.  Pairs with at least 3 offsets are first completed with every lattice point inside the
  convex hull of the listed offsets that is not listed (``n_syn = n_syn_fill``), appended in
  ``du``-major, ``dv``-minor order.  The inside test is a strict convex hull (monotone chain,
  collinear points dropped) with the half-open crossing-number rule; it reproduces flyvis'
  scipy-hull + matplotlib-path result exactly.

Extent 8 gives 13,741 neurons and 434,112 edges (282,123 excitatory, 151,989 inhibitory); the
flyvis default extent 15 gives 45,669 neurons and 1,513,231 edges.

Built networks are cached as ``.npz`` files keyed by extent, fill value and the JSON's sha256, so
every run of the same extent shares one file (see :func:`load_connectome`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from ...io import DataError, atomic_path

FLYVIS_VERSION = "1.2.0"
CONNECTOME_RESOURCE = "flyvis/connectome/fib25-fib19_v2.2.json"
INSTALL_HINT = f"pip install --no-deps flyvis=={FLYVIS_VERSION}"
CACHE_ENV = "CONNECTOME_GNN_CACHE"
DEFAULT_CACHE_DIR = Path("results") / "cache" / "flyvis"
#: bump when the cached arrays change meaning
CACHE_VERSION = 1

ROLES = ("input", "intermediate", "output")
PHOTORECEPTORS = ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8")


# ----------------------------------------------------------------------------- the JSON file


def connectome_json_path() -> Path:
    """Path of the connectome JSON inside the installed ``flyvis`` distribution.

    Located through the distribution metadata, so ``flyvis`` (whose import needs torchvision and
    would change torch's global default device) is never imported.  Raises :class:`DataError` with
    the install command when the package or the file is missing.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("flyvis")
    except metadata.PackageNotFoundError:
        raise DataError(
            "flyvis connectome JSON not found: the 'flyvis' package is not installed "
            f"(install it with `{INSTALL_HINT}`, as tools/install.sh does)"
        ) from None
    path = Path(str(dist.locate_file(CONNECTOME_RESOURCE)))
    if not path.is_file():
        raise DataError(
            f"{path}: flyvis connectome JSON not found in the installed flyvis {dist.version} "
            f"(reinstall with `{INSTALL_HINT}`)"
        )
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_connectome_json(path: str | Path | None = None) -> dict:
    """Parse the connectome JSON (default: the installed flyvis file) with clear errors."""
    path = Path(path) if path is not None else connectome_json_path()
    if not path.is_file():
        raise DataError(f"{path}: connectome JSON not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    for key in ("nodes", "edges", "input_units", "output_units"):
        if key not in data:
            raise DataError(f"{path}: missing top-level key {key!r}")
    return data


def _stride(pattern, path) -> tuple[int, int]:
    kind, arg = pattern
    if kind == "stride":
        return int(arg[0]), int(arg[1])
    if kind == "tile":
        return int(arg), int(arg)
    raise DataError(f"{path}: unsupported node pattern {pattern!r} (expected stride or tile)")


# ----------------------------------------------------------------------------- geometry


def hex_columns(extent: int) -> tuple[np.ndarray, np.ndarray]:
    """Axial coordinates ``(u, v)`` of the 3e(e+1)+1 columns, ordered by u then v."""
    e = int(extent)
    us, vs = [], []
    for u in range(-e, e + 1):
        v = np.arange(max(-e, -e - u), min(e, e - u) + 1)
        us.append(np.full(v.size, u))
        vs.append(v)
    return np.concatenate(us).astype(np.int32), np.concatenate(vs).astype(np.int32)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Strict convex hull (collinear points dropped), counter-clockwise, monotone chain."""
    pts = sorted({(int(x), int(y)) for x, y in points})
    if len(pts) <= 2:
        return np.array(pts, dtype=np.int64)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.int64)


def _inside_polygon(polygon: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    """Half-open crossing-number point-in-polygon test (polygon implicitly closed), vectorised."""
    inside = np.zeros(tx.shape, dtype=bool)
    n = len(polygon)
    for k in range(n):
        x0, y0 = polygon[k - 1]
        x1, y1 = polygon[k]
        f0 = y0 >= ty
        f1 = y1 >= ty
        crosses = f0 != f1
        side = ((y1 - ty) * (x0 - x1) >= (x1 - tx) * (y0 - y1)) == f1
        inside ^= crosses & side
    return inside


def hull_fill_offsets(offsets: np.ndarray) -> np.ndarray:
    """Lattice points inside the convex hull of ``offsets`` (k x 2 ints) that are not listed.

    Returned in ``du``-major, ``dv``-minor order of the bounding box; empty for < 3 offsets.
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(offsets) < 3:
        return np.zeros((0, 2), dtype=np.int64)
    hull = _convex_hull(offsets)
    if len(hull) < 3:
        return np.zeros((0, 2), dtype=np.int64)
    lo, hi = offsets.min(0), offsets.max(0)
    gu, gv = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    gu, gv = gu.ravel(), gv.ravel()
    listed = {(int(a), int(b)) for a, b in offsets}
    keep = _inside_polygon(hull, gu, gv) & np.array(
        [(int(a), int(b)) not in listed for a, b in zip(gu, gv, strict=True)], dtype=bool
    )
    return np.stack([gu[keep], gv[keep]], axis=1)


@dataclass(frozen=True, eq=False)
class PairFilter:
    """One type pair of the JSON with its hull-filled filter (extent-independent)."""

    source_type: int
    target_type: int
    sign: int
    n_syn_certainty: float
    offsets: np.ndarray  # (k, 2) int64 (du, dv): listed offsets, then hull-filled ones
    n_syn: np.ndarray  # (k,) float64
    filled: np.ndarray  # (k,) bool

    @property
    def mean_n_syn(self) -> float:
        """Mean synapse count over the filter's offsets (listed and filled)."""
        return float(self.n_syn.mean())


def pair_filters(
    data: dict, n_syn_fill: float = 1.0, path: str | Path = "connectome JSON"
) -> list[PairFilter]:
    """The 605 type pairs of the parsed JSON in file order, with hull-filled offsets appended."""
    type_of = {str(n["name"]): i for i, n in enumerate(data["nodes"])}
    out, seen = [], set()
    for p, edge in enumerate(data["edges"]):
        try:
            s, t = type_of[edge["src"]], type_of[edge["tar"]]
        except KeyError as exc:
            raise DataError(f"{path}: edge {p} names unknown cell type {exc}") from None
        if (s, t) in seen:
            raise DataError(f"{path}: duplicate type pair {edge['src']} -> {edge['tar']}")
        seen.add((s, t))
        try:
            offs = np.array([o[0] for o in edge["offsets"]], dtype=np.int64).reshape(-1, 2)
            nsyn = np.array([o[1] for o in edge["offsets"]], dtype=np.float64)
        except (TypeError, ValueError, IndexError):
            raise DataError(f"{path}: edge {p} has malformed offsets") from None
        fill = hull_fill_offsets(offs)
        certainty = edge.get("lambda_mult")
        out.append(
            PairFilter(
                source_type=s,
                target_type=t,
                sign=int(np.sign(float(edge["alpha"]))),
                n_syn_certainty=float(certainty) if certainty is not None else float("nan"),
                offsets=np.concatenate([offs, fill]),
                n_syn=np.concatenate([nsyn, np.full(len(fill), float(n_syn_fill))]),
                filled=np.concatenate([np.zeros(len(offs), bool), np.ones(len(fill), bool)]),
            )
        )
    return out


# ----------------------------------------------------------------------------- the network


@dataclass(frozen=True, eq=False)
class Connectome:
    """The built lattice network: types, columns, neurons (nodes) and edges, as numpy arrays.

    Per type (65, JSON order): ``type_names``, ``type_roles`` (input / intermediate / output),
    ``type_stride`` (u, v).  Per column: ``column_u``, ``column_v``.  Per neuron (node):
    ``node_type``, ``node_u``, ``node_v``, ``node_column`` (index into the columns, or -1 never).
    Per type pair (one JSON edge, 605): ``pair_source_type``, ``pair_target_type``, ``pair_sign``
    (+1/-1) and ``pair_n_syn_certainty`` (the JSON ``lambda_mult``, unused by the dynamics).
    Per edge (flyvis order): ``edge_source`` / ``edge_target`` (presynaptic / postsynaptic neuron),
    ``edge_sign``, ``edge_n_syn`` (synapse count of the offset; ``n_syn_fill`` for hull-filled
    offsets), ``edge_du`` / ``edge_dv`` (target minus source column), ``edge_pair`` (index of the
    type pair) and ``edge_filled`` (True for hull-filled offsets).
    """

    extent: int
    n_syn_fill: float
    json_sha256: str
    type_names: np.ndarray
    type_roles: np.ndarray
    type_stride: np.ndarray
    column_u: np.ndarray
    column_v: np.ndarray
    node_type: np.ndarray
    node_u: np.ndarray
    node_v: np.ndarray
    node_column: np.ndarray
    pair_source_type: np.ndarray
    pair_target_type: np.ndarray
    pair_sign: np.ndarray
    pair_n_syn_certainty: np.ndarray
    edge_source: np.ndarray
    edge_target: np.ndarray
    edge_sign: np.ndarray
    edge_n_syn: np.ndarray
    edge_du: np.ndarray
    edge_dv: np.ndarray
    edge_pair: np.ndarray
    edge_filled: np.ndarray

    # -- sizes
    @property
    def n_types(self) -> int:
        return int(self.type_names.size)

    @property
    def n_columns(self) -> int:
        return int(self.column_u.size)

    @property
    def n_nodes(self) -> int:
        return int(self.node_type.size)

    @property
    def n_edges(self) -> int:
        return int(self.edge_source.size)

    @property
    def n_pairs(self) -> int:
        return int(self.pair_sign.size)

    # -- derived views
    @property
    def node_role(self) -> np.ndarray:
        """Role name of every neuron (input / intermediate / output)."""
        return self.type_roles[self.node_type]

    @property
    def node_type_name(self) -> np.ndarray:
        return self.type_names[self.node_type]

    def type_index(self, name: str) -> int:
        hits = np.flatnonzero(self.type_names == name)
        if hits.size != 1:
            raise KeyError(f"unknown cell type {name!r}")
        return int(hits[0])

    @cached_property
    def input_index(self) -> np.ndarray:
        """(8, n_columns) neuron indices of R1..R8 in column order (where stimuli enter)."""
        out = np.empty((len(PHOTORECEPTORS), self.n_columns), dtype=np.int64)
        for r, name in enumerate(PHOTORECEPTORS):
            idx = np.flatnonzero(self.node_type == self.type_index(name))
            if idx.size != self.n_columns:
                raise DataError(f"photoreceptor type {name} is not present in every column")
            out[r] = idx[np.argsort(self.node_column[idx], kind="stable")]
        return out

    @cached_property
    def central_index(self) -> np.ndarray:
        """Per type, the neuron at column (0, 0)."""
        hit = (self.node_u == 0) & (self.node_v == 0)
        out = np.full(self.n_types, -1, dtype=np.int64)
        out[self.node_type[hit]] = np.flatnonzero(hit)
        return out

    @cached_property
    def pair_mean_n_syn(self) -> np.ndarray:
        """Mean ``n_syn`` over the built edges of each type pair (NaN for unrealised pairs)."""
        count = np.bincount(self.edge_pair, minlength=self.n_pairs).astype(np.float64)
        total = np.bincount(self.edge_pair, weights=self.edge_n_syn, minlength=self.n_pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    @cached_property
    def pair_n_edges(self) -> np.ndarray:
        return np.bincount(self.edge_pair, minlength=self.n_pairs).astype(np.int64)

    @cached_property
    def edge_group(self) -> np.ndarray:
        """Index of the (source type, target type, du, dv) group of every edge (2,355 at e >= 4).

        All edges of one group share sign and n_syn, hence the same ground-truth weight.
        """
        key = np.stack(
            [self.edge_pair.astype(np.int64), self.edge_du.astype(np.int64), self.edge_dv]
        )
        _, inverse = np.unique(key, axis=1, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            f.name: np.asarray(getattr(self, f.name))
            for f in fields(self)  # dataclass fields only (no cached properties)
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Connectome:
        kwargs = {}
        for f in fields(cls):
            value = arrays[f.name]
            if f.name == "extent":
                value = int(value)
            elif f.name == "n_syn_fill":
                value = float(value)
            elif f.name == "json_sha256":
                value = str(value)
            kwargs[f.name] = value
        return cls(**kwargs)


def build_connectome(
    extent: int = 8, n_syn_fill: float = 1.0, json_path: str | Path | None = None
) -> Connectome:
    """Build the hexagonal-lattice network of the given ``extent`` from the connectome JSON."""
    extent = int(extent)
    if extent < 0:
        raise ValueError(f"extent must be >= 0, got {extent}")
    path = Path(json_path) if json_path is not None else connectome_json_path()
    data = read_connectome_json(path)
    names = [str(n["name"]) for n in data["nodes"]]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate cell type names")
    inputs, outputs = set(data["input_units"]), set(data["output_units"])
    roles = np.array(
        ["input" if n in inputs else "output" if n in outputs else "intermediate" for n in names]
    )
    stride = np.array([_stride(n["pattern"], path) for n in data["nodes"]], dtype=np.int32)

    cu, cv = hex_columns(extent)
    n_col = cu.size
    side = 2 * extent + 1
    column_at = np.full((side, side), -1, dtype=np.int64)
    column_at[cu + extent, cv + extent] = np.arange(n_col)

    node_type, node_col = [], []
    for t in range(len(names)):
        su, sv = stride[t]
        keep = np.flatnonzero((cu % su == 0) & (cv % sv == 0))
        node_type.append(np.full(keep.size, t, dtype=np.int32))
        node_col.append(keep)
    node_type = np.concatenate(node_type)
    node_col = np.concatenate(node_col).astype(np.int32)
    node_u, node_v = cu[node_col], cv[node_col]
    type_start = np.searchsorted(node_type, np.arange(len(names) + 1))
    node_at = np.full((len(names), side, side), -1, dtype=np.int64)
    node_at[node_type, node_u + extent, node_v + extent] = np.arange(node_type.size)

    filters = pair_filters(data, n_syn_fill, path)
    pair_src = np.array([f.source_type for f in filters], dtype=np.int32)
    pair_tar = np.array([f.target_type for f in filters], dtype=np.int32)
    pair_sign = np.array([f.sign for f in filters], dtype=np.int8)
    pair_cert = np.array([f.n_syn_certainty for f in filters], dtype=np.float32)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("src", "tar", "n_syn", "du", "dv", "pair", "filled")
    }
    for p, f in enumerate(filters):
        s, t, offs = f.source_type, f.target_type, f.offsets
        src = np.arange(type_start[s], type_start[s + 1])
        tu = node_u[src][None, :] + offs[:, :1]  # (n_offsets, n_sources)
        tv = node_v[src][None, :] + offs[:, 1:]
        ok = (np.abs(tu) <= extent) & (np.abs(tv) <= extent)
        tar = np.full(tu.shape, -1, dtype=np.int64)
        tar[ok] = node_at[t, tu[ok] + extent, tv[ok] + extent]
        valid = tar >= 0  # row-major: offset-major, then source node order (flyvis order)
        k_idx, s_idx = np.nonzero(valid)
        parts["src"].append(src[s_idx])
        parts["tar"].append(tar[valid])
        parts["n_syn"].append(f.n_syn[k_idx])
        parts["du"].append(offs[k_idx, 0])
        parts["dv"].append(offs[k_idx, 1])
        parts["pair"].append(np.full(k_idx.size, p, dtype=np.int32))
        parts["filled"].append(f.filled[k_idx])

    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Connectome(
        extent=extent,
        n_syn_fill=float(n_syn_fill),
        json_sha256=file_sha256(path),
        type_names=np.array(names),
        type_roles=roles,
        type_stride=stride,
        column_u=cu,
        column_v=cv,
        node_type=node_type,
        node_u=node_u.astype(np.int32),
        node_v=node_v.astype(np.int32),
        node_column=node_col,
        pair_source_type=pair_src,
        pair_target_type=pair_tar,
        pair_sign=pair_sign,
        pair_n_syn_certainty=pair_cert,
        edge_source=cat["src"].astype(np.int64),
        edge_target=cat["tar"].astype(np.int64),
        edge_sign=pair_sign[cat["pair"]],
        edge_n_syn=cat["n_syn"].astype(np.float32),
        edge_du=cat["du"].astype(np.int32),
        edge_dv=cat["dv"].astype(np.int32),
        edge_pair=cat["pair"].astype(np.int32),
        edge_filled=cat["filled"],
    )


# ----------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``$CONNECTOME_GNN_CACHE/flyvis`` if that variable is set, else ``results/cache/flyvis``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) / "flyvis" if env else DEFAULT_CACHE_DIR


def cache_file(cache_dir: Path, extent: int, n_syn_fill: float, sha256: str) -> Path:
    return Path(cache_dir) / (
        f"connectome_e{int(extent)}_fill{float(n_syn_fill):g}_{sha256[:16]}_v{CACHE_VERSION}.npz"
    )


def load_connectome(
    extent: int = 8,
    n_syn_fill: float = 1.0,
    cache_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    use_cache: bool = True,
) -> Connectome:
    """The network of ``extent``, from the cache if present, else built and cached (atomically).

    ``cache_dir`` defaults to :func:`default_cache_dir`.  The cache key is extent + fill value +
    the JSON's sha256 (+ a format version), so a changed file is never served stale.  A corrupt
    cache file is rebuilt.
    """
    path = Path(json_path) if json_path is not None else connectome_json_path()
    if not use_cache:
        return build_connectome(extent, n_syn_fill, path)
    sha = file_sha256(path)
    target = cache_file(
        Path(cache_dir) if cache_dir else default_cache_dir(), extent, n_syn_fill, sha
    )
    if target.is_file():
        try:
            with np.load(target, allow_pickle=False) as npz:
                con = Connectome.from_arrays({k: npz[k] for k in npz.files})
            if con.json_sha256 == sha and con.extent == int(extent):
                return con
        except Exception:  # corrupt or from an incompatible version: rebuild below
            pass
    con = build_connectome(extent, n_syn_fill, path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **con.to_arrays())
    return con
