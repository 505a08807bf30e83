"""Score reports of a training at its checkpoints, and the prune decision (the scorer).

An exploration with ``pruning`` set writes ``score_request.json`` into the train directory of
each run of a batch (:func:`write_request`) before Snakemake starts it.  The training
(:class:`connectome_gnn.train.checkpoint.ScoreReports`) saves a checkpoint at each requested
fraction of its iterations and runs this module on it::

    python -m connectome_gnn.explore.checkpoint_score <train_dir> <done> <total> <xnorm>

which

1. rebuilds the family's model with the checkpoint's weights and computes the exploration's
   score, ``sum(weight * metric)`` with the weights of the request (the experiment's), from
   the same metric functions as the analysis (:func:`checkpoint_metrics`: connectivity
   metrics of the family's readouts, KMeans cluster accuracy with the training seed, the
   family's per-neuron parameter metrics), so the score at the last checkpoint of a run
   equals the score of the analysis of the same weights;
2. appends it to ``scores.csv`` (iteration, total, fraction, elapsed_s, score, decision,
   reason, the weighted metrics; rows of an earlier attempt from this iteration on are
   dropped);
3. applies the rule (:func:`.pruning.decide`) against the reference curves frozen in the
   request, and writes ``prune_decision.json`` (``iteration``, ``fraction``, ``reason``) when
   the run is to stop.

A request with ``pruning: null`` only reports (a pruned run resumed to its end).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..aggregate.scores import weighted_score
from ..config import validate
from ..errors import DataError
from ..io import atomic_path, read_json, write_json
from ..layout import CHECKPOINT, PRUNE_DECISION, RUN_CONFIG, SCORE_REQUEST, SCORES
from .pruning import Decision, decide, fraction_key, report_fractions

if TYPE_CHECKING:
    from ..simulate.data import Simulation

__all__ = [
    "SCORE_COLUMNS",
    "checkpoint_metrics",
    "main",
    "read_curve",
    "report",
    "write_request",
]

SCORER = __name__
SCORE_COLUMNS = ["iteration", "total", "fraction", "elapsed_s", "score", "decision", "reason"]


def write_request(
    train_dir: Path,
    *,
    node: int,
    sim_dir: Path,
    score_weights: Mapping[str, float],
    pruning: Mapping | None,
    fractions: Sequence[float],
    references: Mapping[int, Mapping[float, float]],
) -> Path:
    """Write ``<train_dir>/score_request.json`` (and remove an old prune decision)."""
    train_dir = Path(train_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    (train_dir / PRUNE_DECISION).unlink(missing_ok=True)
    request = {
        "scorer": SCORER,
        "node": int(node),
        "sim_dir": str(sim_dir),
        "score_weights": dict(score_weights),
        "pruning": None if pruning is None else dict(pruning),
        "fractions": [float(f) for f in fractions],
        "references": {
            str(k): [[float(f), float(s)] for f, s in sorted(curve.items())]
            for k, curve in sorted(references.items())
        },
    }
    path = train_dir / SCORE_REQUEST
    write_json(path, request)
    return path


def read_curve(train_dir: Path) -> dict[float, float]:
    """``{fraction: score}`` of a run's ``scores.csv`` ({} without the file)."""
    path = Path(train_dir) / SCORES
    if not path.is_file():
        return {}
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not {"fraction", "score"} <= set(df.columns):
        raise DataError(f"{path}: columns 'fraction' and 'score' expected")
    return {fraction_key(f): float(s) for f, s in zip(df["fraction"], df["score"], strict=True)}


def checkpoint_metrics(
    sim: Simulation, train_cfg: dict, weights: Mapping, xnorm: float, needed: Sequence[str]
) -> dict:
    """The metrics of ``weights`` that the analysis would compute for ``needed`` (no rollout):
    the connectivity metrics, the KMeans cluster accuracy (seed: the training's ``seed``, as
    in the analysis) and, when a needed metric is not among those, the family's per-neuron
    parameter metrics."""
    # imported here: the driver and ``status`` import this module for its file helpers and
    # never build a model; the scorer process imports only what the score needs
    import torch

    from ..analysis.clustering import cluster_metrics, kmeans_types
    from ..analysis.metrics import connectivity_metrics
    from ..families import get_family

    family = get_family(sim.family)
    model = family.build_model(sim, train_cfg)
    model.load_state_dict(weights)
    model.eval()
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return {}
    ro = family.readouts(model, sim, u_range=(-xnorm, xnorm))
    out = connectivity_metrics(
        ro["w_true"], ro["w_learned"], ro["w_raw"], ro["post"], ro["pre"], sim.n_neurons
    )
    if any(m.startswith("cluster_") or m == "n_types" for m in needed):
        seed = int(train_cfg["seed"])
        kmeans = kmeans_types(ro["embeddings"], sim.types, seed=seed)
        if "cluster_accuracy_single_linkage" in needed:
            out.update(cluster_metrics(ro["embeddings"], sim.types, seed, kmeans=kmeans))
        else:
            out["cluster_accuracy"] = kmeans.accuracy
    if any(m not in out for m in needed):
        from ..analysis.run import parameter_metrics  # the training stack: only when needed

        out.update(parameter_metrics(family, ro))
    return out


def _request(train_dir: Path) -> dict:
    path = train_dir / SCORE_REQUEST
    request = read_json(path)
    if not isinstance(request, dict):
        raise DataError(f"{path}: expected a JSON object")
    for key in ("sim_dir", "score_weights", "references"):
        if key not in request:
            raise DataError(f"{path}: field '{key}' missing")
    return request


def _write_scores(train_dir: Path, row: dict) -> pd.DataFrame:
    path = train_dir / SCORES
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=SCORE_COLUMNS)
    if "iteration" in old:
        old = old[old["iteration"] < row["iteration"]]
    new = pd.DataFrame([row])
    df = new if old.empty else pd.concat([old, new], ignore_index=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def report(train_dir: Path, done: int, total: int, xnorm: float) -> list[Decision]:
    """Score the checkpoint of ``train_dir`` (saved after ``done`` of ``total`` iterations),
    append it to ``scores.csv`` and decide; returns the decisions (one per requested fraction
    reported at ``done``), and writes ``prune_decision.json`` when one of them prunes."""
    train_dir = Path(train_dir)
    request = _request(train_dir)
    settings = request.get("pruning")
    weights = {str(k): float(v) for k, v in request["score_weights"].items()}
    import torch

    from ..simulate.data import Simulation

    ckpt_path = train_dir / CHECKPOINT
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint
        raise DataError(f"{ckpt_path}: cannot load ({type(exc).__name__})") from None
    run_cfg = read_json(train_dir / RUN_CONFIG)
    train_cfg = validate(run_cfg["training"], "train", source=str(train_dir / RUN_CONFIG))
    sim = Simulation(request["sim_dir"])
    metrics = checkpoint_metrics(sim, train_cfg, ckpt["model"], xnorm, list(weights))
    score = weighted_score(metrics, weights)
    references = [
        {fraction_key(f): s for f, s in curve} for curve in request["references"].values()
    ]
    fractions = request.get("fractions") or (report_fractions(settings) if settings else [1.0])
    here = [
        fraction_key(f)
        for f in fractions
        if min(total, max(1, math.ceil(f * total - 1e-9))) == done
    ] or [fraction_key(done / total)]
    decisions = []
    for f in here:
        if settings is None:
            decisions.append(Decision(False, "report only (no pruning)", f, score))
        else:
            decisions.append(decide(settings, f, score, references))
    pruned = next((d for d in decisions if d.prune), None)
    last = pruned or decisions[-1]
    row = {
        "iteration": int(done),
        "total": int(total),
        "fraction": last.fraction,
        "elapsed_s": float(ckpt.get("elapsed_s", math.nan)),
        "score": score,
        "decision": "prune" if pruned else "continue",
        "reason": last.reason,
        **{m: metrics.get(m, math.nan) for m in weights},
    }
    _write_scores(train_dir, row)
    if pruned is not None:
        write_json(
            train_dir / PRUNE_DECISION,
            {"iteration": int(done), "fraction": pruned.fraction, "reason": pruned.reason},
        )
    return decisions


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4:
        print(
            "usage: python -m connectome_gnn.explore.checkpoint_score TRAIN_DIR DONE TOTAL XNORM",
            file=sys.stderr,
        )
        return 2
    train_dir, done, total, xnorm = Path(args[0]), int(args[1]), int(args[2]), float(args[3])
    try:
        decisions = report(train_dir, done, total, xnorm)
    except DataError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    for d in decisions:
        verdict = "prune" if d.prune else "continue"
        print(f"score report: iteration {done}/{total}, {verdict}: {d.reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
