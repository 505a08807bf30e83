"""A job that fails once for a transient reason succeeds on retry, with more resources."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import edit_yaml, make_workdir, set_model, snakemake_cmd

BIN = Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.parametrize("fail_at", ["start", "end"])
def test_transient_train_failure_is_retried_with_more_memory(tmp_path, repo_root, fail_at):
    """``end``: the job dies after its training finished; Snakemake deletes the outputs and
    retries, and the retry writes them from the final checkpoint without training again."""
    work = make_workdir(tmp_path / "w", repo_root, sparsity=[1.0])
    set_model(work, n_frames=2000)
    edit_yaml(work / "config/train/default.yaml", max_iterations=100)
    marker = tmp_path / "failed-once"
    env = dict(
        os.environ,
        PYTHONPATH=str(repo_root / "tests/data/inject"),
        CONNECTOME_GNN_FAIL_ONCE=str(marker),
        CONNECTOME_GNN_FAIL_AT=fail_at,
    )
    cmd = snakemake_cmd(
        work,
        repo_root,
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--retries",
        "1",
        "--printshellcmds",
        "train_all",
    )
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert marker.exists(), "the fault was never injected"
    assert "Trying to restart job" in out or "attempt" in out.lower(), out[-4000:]
    # the retried train job asked for twice the memory (rules/common.smk: mem_mb = 8000 * attempt)
    mems = [int(m) for m in re.findall(r"mem_mb=(\d+)", out.split("rule train:", 1)[1])]
    assert 8000 in mems and 16000 in mems, mems
    info = yaml.safe_load(
        (work / "results/signal_N2/1/default/seed0/train/train_info.json").read_text()
    )
    assert info["status"] == "ok" and info["iterations_done"] == 100
    log = (work / "results/logs/train/signal_N2/1/default/seed0.log").read_text()
    if fail_at == "end":
        assert info["resumed_from_iteration"] == 100, info
        assert "without training again" in log, log[-3000:]
    else:
        assert info["resumed_from_iteration"] is None, info
