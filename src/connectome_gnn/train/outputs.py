"""What a finished (or failed) training leaves in its train directory, besides the checkpoint:
model.pt, loss.csv, train_info.json and run_config.json (names in :mod:`connectome_gnn.layout`)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import atomic_path, write_json
from ..layout import LOSS, MODEL, RUN_CONFIG, TRAIN_INFO
from .checkpoint import LossLog


def write_run_config(
    out_dir: Path, run_id: dict | None, train_cfg: dict, sim_cfg: dict, config_hash: str
) -> None:
    write_json(
        out_dir / RUN_CONFIG,
        {
            **(run_id or {}),
            "training": train_cfg,
            "simulation": sim_cfg,
            "config_hash": config_hash,
        },
    )


def write_outputs(out_dir: Path, model, log: LossLog, info: dict) -> None:
    """model.pt (the state dict), loss.csv and train_info.json, each atomically."""
    with atomic_path(out_dir / MODEL) as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(out_dir / LOSS) as tmp:
        log.frame().to_csv(tmp, index=False)
    write_json(out_dir / TRAIN_INFO, info)
