"""A workflow killed mid-job (node crash, SIGKILL) leaves nothing that looks complete and recovers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import make_workdir, set_model, snakemake_cmd

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_killed_simulate_leaves_no_complete_looking_output(tmp_path, repo_root, run_snakemake):
    work = make_workdir(tmp_path, repo_root, sparsity=[1.0])
    set_model(work, n_frames=200_000)  # long enough to be killed mid-way (seconds)
    sim_dir = work / "results/signal_N2/1/simulation/seed0"
    cmd = snakemake_cmd(work, repo_root, "--cores", "1", "simulate_all")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    while not list(sim_dir.glob(".activity.zarr.*.tmp")):
        assert proc.poll() is None and time.time() < deadline, "simulation never started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, no chance to clean up
    proc.wait(timeout=30)
    assert not (sim_dir / "activity.zarr").exists()
    assert not (sim_dir / "simulation.json").exists()

    res = run_snakemake(work, "--unlock")
    assert res.returncode == 0, res.stderr
    set_model(work, n_frames=20_000)  # the rerun need not be long
    res = run_snakemake(work, "--cores", "1", "--rerun-incomplete", "simulate_all")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (sim_dir / "simulation.json").is_file()
    assert not list(sim_dir.glob(".*.tmp")), "stale temporaries left behind"
    import zarr

    assert zarr.open_group(str(sim_dir / "activity.zarr"), mode="r")["u"].shape == (20_000, 100)
