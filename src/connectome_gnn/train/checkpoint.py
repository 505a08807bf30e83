"""The resumable state of a training: its identity (config hash), the checkpoint file and the
loss log that travels with it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch

from ..errors import DataError
from ..io import atomic_path

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
    if ckpt.get("config_hash") != config_hash:
        return None  # a checkpoint of another configuration: start afresh
    return ckpt


def restore(ckpt: dict, model, optimizer, gen) -> None:
    """Load a checkpoint's model, optimizer and RNG states."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])


class LossLog:
    """The rows of loss.csv (iteration, epoch, loss, data_loss and each regulariser), kept in
    the checkpoint so that a resumed run writes the whole curve."""

    def __init__(self, records: list[dict] | None = None):
        self.records = list(records or [])

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> LossLog:
        cols = ckpt["loss_columns"]
        return cls([dict(zip(cols, row, strict=True)) for row in ckpt["loss_rows"].tolist()])

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
