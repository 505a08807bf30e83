"""Bad-input campaign on the data side (config-side cases: test_config.py and the workflow tests).

Every case damages a copy of a finished tiny run the way a user or a crash would, runs the stage
that reads it, and checks that (1) the error is a clean ConfigError/DataError -- which the
Snakemake scripts print as one line and exit 1, no traceback -- naming the file, and (2) no file
that existed before was deleted or changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from connectome_gnn.aggregate import aggregate
from connectome_gnn.analysis import analyze_run
from connectome_gnn.config import ConfigError, validate
from connectome_gnn.io import DataError
from connectome_gnn.stages import run_simulation
from connectome_gnn.train import train_run

SIM, RUN = "sim", "run"
RUN_ID = {"model": "signal_N40", "sparsity": "1", "cfg": "default", "seed": 0}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    model = validate({"family": "signal", "n_neurons": 40, "n_frames": 1500}, "signal.model")
    run_simulation(model, 1.0, 0, root / SIM)
    train = validate({"max_iterations": 20, "n_epochs": 1}, "train")
    train_run(root / SIM, train, root / RUN / "train", 0, progress=False)
    analyze_run(root / SIM, root / RUN / "train", root / RUN, run_id=RUN_ID)
    return root, model, train


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rewrite_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _truncate_zarr_chunk(root: Path) -> None:
    chunks = sorted(p for p in (root / SIM / "activity.zarr" / "u").rglob("*") if p.is_file())
    data_chunks = [p for p in chunks if p.name != "zarr.json"]
    data_chunks[0].write_bytes(data_chunks[0].read_bytes()[:7])


def _edit_neurons(root: Path) -> None:
    path = root / SIM / "neurons.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:10]) + "\n")


def _w_file(root: Path, name: str, content) -> Path:
    path = root / name
    if name.endswith(".npy"):
        np.save(path, content)
    else:
        path.write_text(content)
    return path


def _simulate_with_w(name, content):
    def stage(root, model, train):
        cfg = dict(model, connectivity="file", connectivity_file=str(_w_file(root, name, content)))
        return run_simulation(cfg, 1.0, 0, root / "sim_from_file")

    return stage


def _train(root, model, train):
    return train_run(root / SIM, train, root / RUN / "train", 0, progress=False)


def _analyze(root, model, train):
    return analyze_run(root / SIM, root / RUN / "train", root / RUN, run_id=RUN_ID)


def _aggregate(root, model, train):
    return aggregate([root / RUN / "metrics.json"], root / "summary")


nan_w = np.full((40, 40), np.nan, dtype=np.float32)

# (case id, damage(root), stage, text the message must contain (besides the file's name))
CASES = [
    (
        "simulation settings deleted",
        lambda r: (r / SIM / "simulation.json").unlink(),
        _train,
        "simulation.json: file not found",
    ),
    (
        "simulation directory missing",
        lambda r: shutil.rmtree(r / SIM),
        _train,
        "sim: simulation directory not found",
    ),
    (
        "activity store deleted",
        lambda r: shutil.rmtree(r / SIM / "activity.zarr"),
        _train,
        "activity.zarr: zarr store not found",
    ),
    ("truncated zarr chunk", _truncate_zarr_chunk, _train, "activity.zarr: cannot read 'u'"),
    (
        "simulation.json hand-edited (not JSON)",
        lambda r: (r / SIM / "simulation.json").write_text("{n_neurons: 40"),
        _train,
        "simulation.json: not valid JSON",
    ),
    (
        "simulation.json hand-edited (n_neurons)",
        lambda r: _rewrite_json(r / SIM / "simulation.json", n_neurons=41),
        _train,
        "array 'u' has shape",
    ),
    ("neurons.csv rows deleted", _edit_neurons, _analyze, "neurons.csv: expected 40 rows"),
    (
        "connectivity.npz corrupted",
        lambda r: (r / SIM / "connectivity.npz").write_bytes(b"PK\x03\x04 junk"),
        _analyze,
        "connectivity.npz: cannot read npz",
    ),
    (
        "corrupted checkpoint",
        lambda r: (r / RUN / "train" / "checkpoint.pt").write_bytes(b"\x80\x02garbage"),
        _train,
        "checkpoint.pt: corrupted checkpoint",
    ),
    (
        "model.pt truncated",
        lambda r: (r / RUN / "train" / "model.pt").write_bytes(
            (r / RUN / "train" / "model.pt").read_bytes()[:100]
        ),
        _analyze,
        "model.pt: cannot load model weights",
    ),
    (
        "model.pt deleted",
        lambda r: (r / RUN / "train" / "model.pt").unlink(),
        _analyze,
        "model.pt: trained model not found",
    ),
    (
        "run_config.json edited (hidden_dim)",
        lambda r: _rewrite_json(
            r / RUN / "train" / "run_config.json",
            training={
                **json.loads((r / RUN / "train" / "run_config.json").read_text())["training"],
                "hidden_dim": 7,
            },
        ),
        _analyze,
        "model.pt: cannot load model weights",
    ),
    (
        "run_config.json edited (unknown key)",
        lambda r: _rewrite_json(r / RUN / "train" / "run_config.json", training={"hidden_dimm": 7}),
        _analyze,
        "field",
    ),
    (
        "train_info.json deleted",
        lambda r: (r / RUN / "train" / "train_info.json").unlink(),
        _analyze,
        "train_info.json: file not found",
    ),
    (
        "train_info.json edited (status)",
        lambda r: _rewrite_json(r / RUN / "train" / "train_info.json", status="great"),
        _analyze,
        "field 'status'",
    ),
    (
        "metrics.json not JSON",
        lambda r: (r / RUN / "metrics.json").write_text("{"),
        _aggregate,
        "metrics.json: not valid JSON",
    ),
    (
        "metrics.json metric is text",
        lambda r: _rewrite_json(r / RUN / "metrics.json", connectivity_R2="high"),
        _aggregate,
        "field 'connectivity_R2' must be a number",
    ),
    (
        "metrics.json is a list",
        lambda r: (r / RUN / "metrics.json").write_text("[1, 2]"),
        _aggregate,
        "metrics.json: expected a JSON object",
    ),
    ("W file with NaN", lambda r: None, _simulate_with_w("W.npy", nan_w), "non-finite"),
    ("W file wrong shape", lambda r: None, _simulate_with_w("W.npy", np.zeros((40, 39))), "shape"),
    (
        "W edge list index out of range",
        lambda r: None,
        _simulate_with_w("W.csv", "source,target,weight\n0,1,0.5\n3,40,1.0\n"),
        "indices outside [0, 39]",
    ),
    (
        "W edge list missing column",
        lambda r: None,
        _simulate_with_w("W.csv", "source,target\n0,1\n"),
        "weight",
    ),
]


@pytest.mark.parametrize("case, damage, stage, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_clear_error_and_keeps_results(
    tmp_path, finished, case, damage, stage, text
):
    base, model, train = finished
    root = tmp_path / "copy"
    shutil.copytree(base, root)
    damage(root)
    before = _snapshot(root)
    with pytest.raises((ConfigError, DataError)) as info:
        stage(root, model, train)
    message = str(info.value)
    print(f"\nBAD-INPUT | {case} | {message}")
    assert text in message, message
    assert "\n" not in message and "Traceback" not in message
    after = _snapshot(root)
    lost = {k for k in before if k not in after or after[k] != before[k]}
    assert not lost, f"{case}: earlier results deleted or changed: {sorted(lost)}"
