"""The resumable state of a training: its identity (config hash), the checkpoint file and the
loss log that travels with it; and the score reports an exploration may ask for at checkpoints.

Score reports (:class:`ScoreReports`): when the train directory holds a ``score_request.json``
(written there by an exploration before the run; plain grids have none, so nothing changes for
them), the training saves a checkpoint at each requested fraction of its iterations and runs
the request's scorer, ``python -m <scorer> <train_dir> <iterations done> <total> <xnorm>``, in
a separate process (so the training's state and random streams are untouched, and the trainer
needs nothing above its own layer).  The scorer computes the exploration's score from the
checkpoint's weights, appends it to ``scores.csv`` and, when its rule says the run cannot win,
writes ``prune_decision.json`` naming that iteration; the training then stops with status
``pruned``, keeping the checkpoint, from which it resumes when it is run again.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from ..errors import DataError
from ..io import atomic_path, read_json
from ..layout import PRUNE_DECISION, SCORE_REQUEST

LOSS_COLUMNS = ["iteration", "epoch", "loss", "data_loss"]


def config_hash(train_cfg: dict, sim_meta: dict) -> str:
    """Identity of a training for resuming: its config, the simulation config and seed, and
    (FlyVis) the version of the ground-truth parameter generator, so that a checkpoint trained
    on data of an older generator is not resumed on regenerated data."""
    ident = {"train": train_cfg, "sim": sim_meta.get("model_config"), "seed": sim_meta.get("seed")}
    if sim_meta.get("params_version") is not None:  # absent: the hash of earlier runs is kept
        ident["params_version"] = sim_meta["params_version"]
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, model, optimizer, gen, state: dict) -> None:
    """Write model, optimizer and RNG states with ``state`` (position, loss log) atomically."""
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, config_hash: str) -> dict | None:
    """The checkpoint at ``path`` when it belongs to this configuration, else None."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"{path}: corrupted checkpoint ({type(exc).__name__}); delete it to restart this run"
        ) from None
    if ckpt.get("config_hash") != config_hash:  # another configuration: start afresh, say so
        print(
            f"{path} belongs to another configuration (config hash {ckpt.get('config_hash')}, "
            f"this run {config_hash}: the training config or the simulation changed); "
            "training afresh",
            file=sys.stderr,
            flush=True,
        )
        return None
    return ckpt


def restore(ckpt: dict, model, optimizer, gen) -> None:
    """Load a checkpoint's model, optimizer and RNG states."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])


#: loss.csv columns that count (written as integers after a resume too)
INTEGER_COLUMNS = frozenset({"iteration", "epoch"})


class LossLog:
    """The rows of loss.csv (iteration, epoch, loss, data_loss and each regulariser), kept in
    the checkpoint so that a resumed run writes the whole curve."""

    def __init__(self, records: list[dict] | None = None):
        self.records = list(records or [])

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> LossLog:
        cols = ckpt["loss_columns"]
        rows = [dict(zip(cols, row, strict=True)) for row in ckpt["loss_rows"].tolist()]
        for row in rows:  # stored as float64: the positions are integers again
            for key in INTEGER_COLUMNS.intersection(row):
                row[key] = int(row[key])
        return cls(rows)

    def add(self, record: dict) -> None:
        self.records.append(record)

    def state(self) -> dict:
        """``loss_columns`` and ``loss_rows`` (a float64 tensor) for the checkpoint."""
        # every column of any row (a regulariser may start or stop with a phase of the training)
        cols = list(dict.fromkeys(c for r in self.records for c in r)) or ["iteration"]
        rows = torch.tensor(
            [[r.get(c, float("nan")) for c in cols] for r in self.records], dtype=torch.float64
        )
        return {"loss_columns": cols, "loss_rows": rows.reshape(len(self.records), len(cols))}

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame.from_records(self.records)
        return pd.DataFrame(columns=LOSS_COLUMNS) if df.empty else df

    def final_loss(self) -> float:
        return float(self.records[-1]["loss"]) if self.records else float("nan")


_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ScoreReports:
    """The score reports a run was asked for: ``positions`` (iterations done -> report)."""

    def __init__(self, out_dir: Path, scorer: str, positions: set[int]):
        self.out_dir, self.scorer, self.positions = Path(out_dir), scorer, set(positions)

    @classmethod
    def requested(cls, out_dir: Path, total: int) -> ScoreReports | None:
        """The reports of ``<out_dir>/score_request.json`` (None without the file): one at
        ``ceil(fraction * total)`` iterations for each requested fraction."""
        path = Path(out_dir) / SCORE_REQUEST
        if not path.is_file():
            return None
        request = read_json(path)
        scorer = request.get("scorer") if isinstance(request, dict) else None
        if not isinstance(scorer, str) or not _MODULE.match(scorer):
            raise DataError(f"{path}: field 'scorer' must be a module name, got {scorer!r}")
        fractions = request.get("fractions")
        if not isinstance(fractions, list) or not all(
            isinstance(f, int | float) and 0 < f <= 1 for f in fractions
        ):
            raise DataError(f"{path}: field 'fractions' must be a list of numbers in (0, 1]")
        positions = {min(total, max(1, math.ceil(f * total - 1e-9))) for f in fractions}
        return cls(out_dir, scorer, positions)

    def due(self, done: int) -> bool:
        return done in self.positions

    def report(self, done: int, total: int, xnorm: float) -> str | None:
        """Run the scorer on the checkpoint just saved at ``done`` iterations; the reason to
        stop when it decided to prune the run, else None.  A scorer that fails is logged and
        the training goes on."""
        cmd = [sys.executable, "-m", self.scorer, str(self.out_dir), str(done), str(total)]
        cmd.append(repr(float(xnorm)))
        rc = subprocess.run(cmd, check=False, stdout=sys.stderr).returncode
        if rc != 0:
            print(
                f"score report at iteration {done} failed (exit {rc}); training goes on",
                file=sys.stderr,
                flush=True,
            )
            return None
        path = self.out_dir / PRUNE_DECISION
        if not path.is_file():
            return None
        decision = read_json(path)
        if not isinstance(decision, dict) or decision.get("iteration") != done:
            return None  # a decision of an earlier attempt
        return str(decision.get("reason") or f"pruned at iteration {done}")
