"""Procedural visual stimuli on the hexagonal column lattice (no downloads, no rendering).

Every stimulus is a luminance movie of shape ``(frames, n_columns)`` in ``[0, 1]`` with grey
``0.5`` as background, sampled once per column (ommatidium) in the column order of
:func:`~connectome_gnn.simulate.flyvis.connectome.hex_columns`.  Spatial quantities are in
column units: the cartesian position of column ``(u, v)`` is ``x = u + v / 2``,
``y = (sqrt(3) / 2) v`` so neighbouring columns are 1 apart.  Edges of bars, moving edges and
square gratings are anti-aliased with a one-column linear ramp (a crude model of the
photoreceptor's acceptance angle) so that slow motion changes luminance smoothly.

Stimulus kinds (``KINDS``; parameters drawn by :class:`StimulusSequence`):

``full_field_flash``  grey, then the whole field steps to an ON/OFF intensity, then grey.
``disc_flash``        the same inside a disc of 1 to extent/2 columns around a random column.
``moving_bar``        a bar 1, 2 or 4 columns wide at 0, 30, ..., 330 degrees, crossing the field
                      at 2.4 to 25 columns/s (the flyvis speeds), ON or OFF on grey.
``moving_edge``       an ON or OFF half-plane whose border sweeps across the field, then holds.
``grating``           a drifting sine or square grating (period 2 to 12 columns, any angle).
``noise``             spatio-temporal noise (binary or Gaussian, white or spatially smoothed,
                      refreshed every 1, 2 or 5 frames).
``grey``              uniform grey.

:class:`StimulusSequence` mixes them into one long seeded sequence (each segment starts with a
short grey gap), generated chunk by chunk; :func:`photoreceptor_input` routes a luminance movie
to the eight photoreceptor types R1-R8 of every column (all 8 get the column's value; every other
neuron gets 0), which is the input current ``x_i(t)`` of the dynamics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

GREY = 0.5
KINDS = (
    "full_field_flash",
    "disc_flash",
    "moving_bar",
    "moving_edge",
    "grating",
    "noise",
    "grey",
)
#: default relative frequency of each kind in a mixed sequence
DEFAULT_MIX = {
    "full_field_flash": 1.0,
    "disc_flash": 1.0,
    "moving_bar": 2.0,
    "moving_edge": 1.5,
    "grating": 2.0,
    "noise": 2.0,
    "grey": 0.25,
}
#: bar / edge / grating speeds in columns per second (flyvis MovingBar speeds)
SPEEDS = (2.4, 4.8, 9.7, 13.0, 19.0, 25.0)
ANGLES = tuple(range(0, 360, 30))


def column_positions(column_u: np.ndarray, column_v: np.ndarray) -> np.ndarray:
    """(n_columns, 2) cartesian positions (x, y) in column units (neighbours 1 apart)."""
    u = np.asarray(column_u, dtype=np.float64)
    v = np.asarray(column_v, dtype=np.float64)
    return np.stack([u + v / 2.0, np.sqrt(3.0) / 2.0 * v], axis=1)


def _n(t: float, dt: float) -> int:
    return max(int(round(t / dt)), 0)


def _ramp(distance: np.ndarray) -> np.ndarray:
    """Coverage of a column whose centre is ``distance`` columns inside a border (linear ramp)."""
    return np.clip(0.5 + distance, 0.0, 1.0)


def _direction(angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a)])


def _field_radius(pos: np.ndarray) -> float:
    return float(np.sqrt((pos**2).sum(1)).max()) if len(pos) else 0.0


def _grey(n_frames: int, n_columns: int) -> np.ndarray:
    return np.full((n_frames, n_columns), GREY, dtype=np.float32)


# ----------------------------------------------------------------------------- renderers


def flash(
    pos: np.ndarray,
    dt: float,
    intensity: float,
    t_pre: float = 0.5,
    t_stim: float = 0.5,
    t_post: float = 0.5,
    radius: float | None = None,
    center: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Grey ``t_pre``, then ``intensity`` for ``t_stim`` (whole field, or a disc), grey ``t_post``."""
    n_pre, n_stim, n_post = _n(t_pre, dt), _n(t_stim, dt), _n(t_post, dt)
    out = _grey(n_pre + n_stim + n_post, len(pos))
    if radius is None or radius < 0:
        mask = np.ones(len(pos))
    else:
        dist = np.sqrt(((pos - np.asarray(center)) ** 2).sum(1))
        mask = _ramp(radius - dist)
    out[n_pre : n_pre + n_stim] = GREY + (intensity - GREY) * mask
    return out


def moving_bar(
    pos: np.ndarray,
    dt: float,
    angle: float,
    width: float,
    speed: float,
    intensity: float,
    t_pre: float = 0.5,
    t_post: float = 0.5,
    edge: bool = False,
    t_hold: float = 0.0,
) -> np.ndarray:
    """A bar (or, with ``edge``, a half-plane) moving across the field in direction ``angle``.

    The bar centre (edge border) travels at ``speed`` columns/s from outside one side of the field
    to outside the other.  An edge leaves the field at ``intensity`` and holds it for ``t_hold``
    seconds.  Grey ``t_pre`` before and ``t_post`` after.
    """
    proj = pos @ _direction(angle)
    r = _field_radius(pos) + width + 1.0
    n_move = max(int(np.ceil(2 * r / (speed * dt))), 1)
    s = -r + speed * dt * np.arange(n_move)
    if edge:
        cover = _ramp(s[:, None] - proj[None, :])  # region behind the border
    else:
        cover = _ramp(width / 2.0 - np.abs(proj[None, :] - s[:, None]))
    move = GREY + (intensity - GREY) * cover
    parts = [_grey(_n(t_pre, dt), len(pos)), move.astype(np.float32)]
    if edge and t_hold > 0:
        parts.append(np.full((_n(t_hold, dt), len(pos)), intensity, dtype=np.float32))
    parts.append(_grey(_n(t_post, dt), len(pos)))
    return np.concatenate(parts)


def grating(
    pos: np.ndarray,
    dt: float,
    angle: float,
    period: float,
    speed: float,
    contrast: float,
    duration: float,
    square: bool = False,
    phase: float = 0.0,
    t_pre: float = 0.25,
) -> np.ndarray:
    """A grating drifting at ``speed`` columns/s along ``angle``; luminance 0.5 +- contrast / 2."""
    proj = pos @ _direction(angle)
    t = dt * np.arange(_n(duration, dt))
    arg = 2 * np.pi * (proj[None, :] - speed * t[:, None]) / period + phase
    if square:
        # distance (in columns) to the nearest zero crossing of sin, signed: anti-aliased square
        dist = np.sin(arg) * period / (2 * np.pi)
        wave = 2.0 * _ramp(dist) - 1.0
    else:
        wave = np.sin(arg)
    move = GREY + 0.5 * contrast * wave
    return np.concatenate([_grey(_n(t_pre, dt), len(pos)), move.astype(np.float32)])


def smoothing_kernel(pos: np.ndarray, length: float) -> np.ndarray | None:
    """Row-normalised Gaussian kernel (n_columns x n_columns) of width ``length``; None if 0."""
    if length <= 0:
        return None
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * length**2))
    return k / np.sqrt((k**2).sum(1, keepdims=True))  # keeps unit variance for white input


def noise(
    rng: np.random.Generator,
    pos: np.ndarray,
    dt: float,
    duration: float,
    contrast: float,
    refresh_frames: int = 1,
    binary: bool = False,
    length: float = 0.0,
    t_pre: float = 0.25,
) -> np.ndarray:
    """Spatio-temporal noise around grey: per column (optionally smoothed over ``length``
    columns), held for ``refresh_frames`` frames; binary (0.5 +- contrast / 2) or Gaussian
    (std contrast / 4), clipped to [0, 1]."""
    n = _n(duration, dt)
    n_draw = -(-n // max(refresh_frames, 1))
    z = rng.standard_normal((n_draw, len(pos)))
    kernel = smoothing_kernel(pos, length)
    if kernel is not None:
        z = z @ kernel.T
    z = np.repeat(z, max(refresh_frames, 1), axis=0)[:n]
    vals = GREY + (0.5 * contrast * np.sign(z) if binary else 0.25 * contrast * z)
    move = np.clip(vals, 0.0, 1.0).astype(np.float32)
    return np.concatenate([_grey(_n(t_pre, dt), len(pos)), move])


# ----------------------------------------------------------------------------- sequences


@dataclass
class Segment:
    """One stimulus of a sequence: its kind, drawn parameters and frames."""

    kind: str
    params: dict
    frames: np.ndarray = field(repr=False)


def _on_off(rng: np.random.Generator) -> float:
    """An intensity away from grey: ON (0.75..1) or OFF (0..0.25)."""
    level = rng.uniform(0.75, 1.0)
    return float(level if rng.random() < 0.5 else 1.0 - level)


def draw_segment(
    kind: str, rng: np.random.Generator, pos: np.ndarray, dt: float, extent: int
) -> Segment:
    """Draw the parameters of one stimulus of ``kind`` and render it."""
    gap = float(rng.uniform(0.1, 0.5))  # grey before every stimulus
    if kind in ("full_field_flash", "disc_flash"):
        p = {
            "intensity": _on_off(rng),
            "t_pre": gap,
            "t_stim": float(rng.uniform(0.1, 1.0)),
            "t_post": float(rng.uniform(0.2, 0.8)),
        }
        if kind == "disc_flash":
            c = pos[rng.integers(len(pos))]
            p["radius"] = float(rng.integers(1, max(extent // 2, 1) + 1))
            p["center"] = (float(c[0]), float(c[1]))
        return Segment(kind, p, flash(pos, dt, **p))
    if kind in ("moving_bar", "moving_edge"):
        edge = kind == "moving_edge"
        p = {
            "angle": float(rng.choice(ANGLES)),
            "width": 0.0 if edge else float(rng.choice([1.0, 2.0, 4.0])),
            "speed": float(rng.choice(SPEEDS)),
            "intensity": _on_off(rng),
            "t_pre": gap,
            "t_post": float(rng.uniform(0.1, 0.4)),
        }
        if edge:
            p["t_hold"] = float(rng.uniform(0.2, 0.6))
        return Segment(kind, p, moving_bar(pos, dt, edge=edge, **p))
    if kind == "grating":
        p = {
            "angle": float(rng.uniform(0, 360)),
            "period": float(rng.uniform(2.0, 12.0)),
            "speed": float(rng.choice(SPEEDS)) * float(rng.choice([-1.0, 1.0])),
            "contrast": float(rng.uniform(0.3, 1.0)),
            "duration": float(rng.uniform(1.0, 3.0)),
            "square": bool(rng.random() < 0.5),
            "phase": float(rng.uniform(0, 2 * np.pi)),
            "t_pre": gap,
        }
        return Segment(kind, p, grating(pos, dt, **p))
    if kind == "noise":
        p = {
            "duration": float(rng.uniform(1.0, 3.0)),
            "contrast": float(rng.uniform(0.3, 1.0)),
            "refresh_frames": int(rng.choice([1, 2, 5])),
            "binary": bool(rng.random() < 0.5),
            "length": float(rng.choice([0.0, 1.0, 2.0])),
            "t_pre": gap,
        }
        return Segment(kind, p, noise(rng, pos, dt, **p))
    if kind == "grey":
        p = {"duration": float(rng.uniform(0.5, 1.5))}
        return Segment(kind, p, _grey(max(_n(p["duration"], dt), 1), len(pos)))
    raise ValueError(f"unknown stimulus kind {kind!r} (known: {', '.join(KINDS)})")


class StimulusSequence:
    """A seeded, endless mix of stimuli on the lattice, read in chunks of frames.

    >>> seq = StimulusSequence(con.column_u, con.column_v, dt=0.02, seed=0)
    >>> for lum in seq.chunks(n_frames=10_000, chunk_frames=1_000): ...   # (<=1000, n_columns)

    ``mix`` maps kinds (:data:`KINDS`) to relative frequencies (missing kinds: 0; default
    :data:`DEFAULT_MIX`).  ``segments`` logs every segment started so far as
    ``(start_frame, n_frames, kind, params)``.  Only the current segment is held in memory.
    """

    def __init__(
        self,
        column_u: np.ndarray,
        column_v: np.ndarray,
        dt: float,
        seed: int,
        mix: dict[str, float] | None = None,
    ):
        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = set(mix) - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown stimulus kinds {sorted(unknown)} (known: {', '.join(KINDS)})"
            )
        self.kinds = [k for k in KINDS if mix.get(k, 0) > 0]
        if not self.kinds:
            raise ValueError("stimulus mix has no kind with a positive weight")
        w = np.array([float(mix[k]) for k in self.kinds])
        self.weights = w / w.sum()
        self.pos = column_positions(column_u, column_v)
        self.extent = (
            int(max(np.abs(column_u).max(), np.abs(column_v).max())) if len(column_u) else 0
        )
        self.dt = float(dt)
        self.rng = np.random.default_rng(seed)
        self.segments: list[tuple[int, int, str, dict]] = []
        self._frame = 0

    @property
    def n_columns(self) -> int:
        return len(self.pos)

    def next_segment(self) -> Segment:
        kind = self.kinds[int(self.rng.choice(len(self.kinds), p=self.weights))]
        seg = draw_segment(kind, self.rng, self.pos, self.dt, self.extent)
        self.segments.append((self._frame, len(seg.frames), kind, seg.params))
        self._frame += len(seg.frames)
        return seg

    def chunks(self, n_frames: int, chunk_frames: int) -> Iterator[np.ndarray]:
        """Yield ``n_frames`` frames in consecutive float32 blocks of ``chunk_frames`` (last shorter)."""
        chunk_frames = max(int(chunk_frames), 1)
        pending: list[np.ndarray] = []
        have, done = 0, 0
        while done < n_frames:
            want = min(chunk_frames, n_frames - done)
            while have < want:
                frames = self.next_segment().frames
                pending.append(frames)
                have += len(frames)
            block = np.concatenate(pending) if len(pending) > 1 else pending[0]
            out, rest = block[:want], block[want:]
            pending, have = ([rest] if len(rest) else []), len(rest)
            done += want
            yield np.ascontiguousarray(out, dtype=np.float32)

    def frames(self, n_frames: int) -> np.ndarray:
        """All ``n_frames`` at once (convenience for short sequences)."""
        return np.concatenate(list(self.chunks(n_frames, n_frames)))


def photoreceptor_input(luminance: np.ndarray, input_index: np.ndarray, n_neurons: int):
    """Input current x (frames x n_neurons): each column's luminance on its R1-R8, 0 elsewhere.

    ``input_index`` is the (8, n_columns) neuron index array of
    :attr:`Connectome.input_index`.  Works with numpy arrays and torch tensors.
    """
    idx = input_index
    if hasattr(luminance, "new_zeros"):  # torch
        x = luminance.new_zeros((luminance.shape[0], n_neurons))
        for r in range(idx.shape[0]):
            x[:, idx[r]] = luminance
        return x
    lum = np.asarray(luminance)
    x = np.zeros((lum.shape[0], n_neurons), dtype=lum.dtype)
    for r in range(idx.shape[0]):
        x[:, idx[r]] = lum
    return x
