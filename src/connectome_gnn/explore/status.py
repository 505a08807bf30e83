"""Live status of an exploration (``connectome-gnn status <experiment>``).

Reads only what the runs already write, so it works on a login node while Snakemake runs:
``nodes.yaml`` (the tree), and per run of the current batch its ``train/train_info.json``
(finished: ok, failed or pruned, wall time, iterations), the last progress line of its train
log (``train: 1200/25000 (4.8 %), ..., 12 s elapsed, ~4.1 min left``, written every 30 s),
its ``train/scores.csv`` (score reports: iteration, total, elapsed, score) and whether a
``train/checkpoint.pt`` exists.

States: ``finished`` / ``failed`` / ``pruned`` (train_info.json), ``running`` (a progress
line, a score report or a checkpoint, and no train_info.json yet; a job killed without a
trace stays ``running`` until Snakemake retries it), ``queued`` (nothing yet).  The remaining
time is the log's estimate, else a linear extrapolation of the last score report.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .. import layout
from ..io import DataError, read_json
from ..text import as_float
from .checkpoint_score import SCORE_COLUMNS
from .node import Node
from .tree import ExplorationTree

__all__ = ["batch_status", "format_status", "last_progress", "node_status"]

_PROGRESS = re.compile(
    r"^train: (\d+)/(\d+)\b.*?([\d.]+ (?:s|min|h)) elapsed(?:, ~([\d.]+ (?:s|min|h)) left)?"
)
_UNIT = {"s": 1.0, "min": 60.0, "h": 3600.0}
STATES = ("queued", "running", "finished", "failed", "pruned")


def _seconds(text: str | None) -> float:
    if not text:
        return math.nan
    value, unit = text.split()
    return float(value) * _UNIT[unit]


def last_progress(log: Path) -> dict | None:
    """``{done, total, elapsed_s, left_s}`` of the last progress line of a train log."""
    if not log.is_file():
        return None
    found = None
    for line in log.read_text(errors="replace").splitlines():
        m = _PROGRESS.match(line.strip())
        if m:
            found = m
    if found is None:
        return None
    done, total = int(found.group(1)), int(found.group(2))
    left = _seconds(found.group(4)) if done < total else 0.0
    return {"done": done, "total": total, "elapsed_s": _seconds(found.group(3)), "left_s": left}


def _last_score(train: Path) -> dict | None:
    path = train / layout.SCORES
    if not path.is_file():
        return None
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if df.empty or not set(SCORE_COLUMNS[:5]) <= set(df.columns):
        return None
    row = df.iloc[-1]
    return {k: as_float(row[k]) for k in ("iteration", "total", "elapsed_s", "score")}


def node_status(tree: ExplorationTree, node: Node, results: str | Path) -> dict:
    """The state of one node's run from its files (module docstring)."""
    sim = node.sim
    ident = (sim["model"], sim["sparsity"], tree.cfg_name(node), sim.get("seed", 0))
    train = layout.train_dir(results, *ident)
    log = Path(results) / layout.run_log_pattern("train").format(
        model=ident[0], sparsity=layout.format_sparsity(ident[1]), cfg=ident[2], seed=ident[3]
    )
    out = {
        "node": node.node_id,
        "cfg": tree.cfg_name(node),
        "state": "queued",
        "done": None,
        "total": None,
        "score": node.score if node.finished else None,
        "elapsed_s": math.nan,
        "left_s": math.nan,
        "reason": None,
    }
    score = _last_score(train)
    if score is not None:
        out.update(done=int(score["iteration"]), total=int(score["total"]))
        out.update(elapsed_s=score["elapsed_s"])
        if out["score"] is None:
            out["score"] = score["score"]
        if score["iteration"] > 0:
            rate = score["elapsed_s"] / score["iteration"]
            out["left_s"] = rate * (score["total"] - score["iteration"])
    progress = last_progress(log)
    if progress is not None:
        out.update(done=progress["done"], total=progress["total"])
        out.update(elapsed_s=progress["elapsed_s"], left_s=progress["left_s"])
    info_path = train / layout.TRAIN_INFO
    if info_path.is_file():
        try:
            info = read_json(info_path)
        except DataError:
            info = {}
        status = info.get("status") if isinstance(info, dict) else None
        if status in ("ok", "failed", "pruned"):
            out["state"] = "finished" if status == "ok" else status
            out["reason"] = info.get("reason")
            out["done"] = info.get("iterations_done", out["done"])
            n_iter, n_epochs = info.get("iterations_per_epoch"), info.get("n_epochs")
            if isinstance(n_iter, int) and isinstance(n_epochs, int):
                out["total"] = n_iter * n_epochs
            out["elapsed_s"] = as_float(info.get("wall_time_s"))
            out["left_s"] = 0.0
            return out
    if progress is not None or score is not None or (train / layout.CHECKPOINT).is_file():
        out["state"] = "running"
    return out


def batch_status(tree: ExplorationTree, results: str | Path) -> list[dict]:
    """The status of every node of the current batch (the last one) and of every node still
    pending or running."""
    if not len(tree):
        return []
    last = max(n.batch for n in tree)
    nodes = [n for n in tree if n.batch == last or not n.finished]
    return [node_status(tree, n, results) for n in nodes]


def _duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_status(tree: ExplorationTree, results: str | Path) -> str:
    """The text ``connectome-gnn status`` prints."""
    rows = batch_status(tree, results)
    batch = max((n.batch for n in tree), default=0)
    lines = [f"exploration {tree.name}: {len(tree)} node(s), batch {batch}"]
    header = f"{'node':>5}  {'state':<9} {'iteration':>15}  {'score':>7}  {'elapsed':>9}  left"
    lines.append(header)
    for r in rows:
        it = "-" if r["done"] is None else f"{r['done']}/{r['total'] if r['total'] else '?'}"
        score = "-" if r["score"] is None or not math.isfinite(r["score"]) else f"{r['score']:.4f}"
        line = (
            f"{r['node']:>5}  {r['state']:<9} {it:>15}  {score:>7}  "
            f"{_duration(r['elapsed_s']):>9}  {_duration(r['left_s'])}"
        )
        if r["reason"]:
            line += f"  ({r['reason']})"
        lines.append(line)
    best = tree.best()
    if best is None:
        lines.append("best so far: none finished yet")
    else:
        lines.append(
            f"best so far: node {best.node_id} (block {best.block}, {tree.cfg_name(best)}), "
            f"score {best.score:.4f}"
        )
    return "\n".join(lines) + "\n"
