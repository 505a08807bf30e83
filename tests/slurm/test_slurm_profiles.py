"""The shipped SLURM profiles on a real local SLURM: GPU requests, accounting, results, resume.

Each test runs the tiny default (shrunk: fewer frames and iterations, train and analyze still run)
through `snakemake --profile <copy of profiles/...>` whose only changes are the site-specific
values (partitions, account, polling delays), and compares the summary with a local run.
"""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch

from .conftest import (
    TIMINGS,
    assert_same_summary,
    make_test_workdir,
    run_cancelling,
    run_local,
    sacct_fields,
    sbatch_calls,
    site_profile,
    slurm_jobs,
    snakemake_cmd,
    squeue_jobs,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SNAKEMAKE_TIMEOUT = 480


def run_profile(repo: Path, work: Path, profile: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(
        snakemake_cmd(repo, work, "--profile", str(profile), "--verbose"),
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT,
    )
    (work / "snakemake.out").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-8000:]
    return res


def assert_gpu_only_for_train(calls: dict[str, list[str]]) -> None:
    assert set(calls) >= {"simulate", "train", "analyze"}, sorted(calls)
    gpu_flag = re.compile(r"--gpus[= ]|--gres[= ]gpu")
    for call in calls["train"]:
        assert gpu_flag.search(call), call
        assert "-p gpu" in call, call
    for rule in ("simulate", "analyze"):
        for call in calls[rule]:
            assert not re.search(r"--gpus|--gres", call), call
            assert "-p cpu" in call, call


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, repo_root):
    """The same shrunk tiny default run locally (`--cores 2 --resources gpu=1`)."""
    t0 = time.perf_counter()
    work = make_test_workdir(tmp_path_factory.mktemp("local"), repo_root)
    run_local(repo_root, work)
    TIMINGS["tests_s"]["local_reference (fixture)"] = round(time.perf_counter() - t0, 1)
    return work


def test_accounting_profile_runs_tiny_default(slurm_cluster, local_reference, tmp_path, repo_root):
    """profiles/slurm (sacct status, account, efficiency report): GPU train jobs, account ci."""
    work = make_test_workdir(tmp_path / "work", repo_root)
    profile = site_profile(repo_root, "slurm", tmp_path / "profile", slurm_cluster)
    res = run_profile(repo_root, work, profile)
    out = res.stdout + res.stderr

    calls = sbatch_calls(out)
    assert_gpu_only_for_train(calls)
    assert len(calls["train"]) == 2 and len(calls["simulate"]) == 2
    assert len(calls["analyze"]) == 1  # the two analyze jobs bundled into one group job
    assert all(" -A ci " in call for rule in calls.values() for call in rule)
    assert "command=sacct" in out  # status via sacct, the plugin default

    jobs = slurm_jobs(out)
    assert sorted(jobs.values()) == ["analyze", "simulate", "simulate", "train", "train"], jobs
    acct = sacct_fields(list(jobs))
    assert {job: fields[0] for job, fields in acct.items()} == dict.fromkeys(jobs, "ci"), acct
    for job, rule in jobs.items():  # what SLURM allocated (AllocTRES), not only what was asked
        assert ("gres/gpu=1" in acct[job][1]) == (rule == "train"), (rule, acct[job])
    reports = list((work / "results/logs/slurm").glob("efficiency_report_*.csv"))
    assert reports, "slurm-efficiency-report wrote nothing"

    assert_same_summary(work, local_reference)


def test_noaccount_profile_runs_with_squeue_status(
    slurm_cluster, local_reference, tmp_path, repo_root
):
    """profiles/slurm-noacct: status via squeue, no -A; same results (one sparsity only)."""
    work = make_test_workdir(tmp_path / "work", repo_root, grid={"sparsity": [1.0]})
    profile = site_profile(repo_root, "slurm-noacct", tmp_path / "profile", slurm_cluster)
    res = run_profile(repo_root, work, profile)
    out = res.stdout + res.stderr

    calls = sbatch_calls(out)
    assert_gpu_only_for_train(calls)
    assert not any(re.search(r"\s-A\s", call) for rule in calls.values() for call in rule)
    assert "command=squeue" in out and "command=sacct" not in out
    assert_same_summary(work, local_reference)


def test_killed_train_job_is_resubmitted_and_resumes(slurm_cluster, tmp_path, repo_root):
    """scancel a running train job after its first checkpoint: retried, resumed, same weights.

    Only the trainings run (target train_all, locally and on SLURM): the analysis of equal
    weights is equal, and the analyze/aggregate/report jobs would only add SLURM round trips.

    Runs with profiles/slurm-noacct (status via squeue). With sacct status (profiles/slurm) the
    plugin (snakemake-executor-plugin-slurm 2.8.0) never notices a job cancelled by scancel:
    sacct reports its state as "CANCELLED by <uid>", which is not in the plugin's list of failed
    states, so the job is taken for still running and Snakemake waits forever (see README).
    """
    train = {"n_epochs": 3, "checkpoint_every": 100}
    grid = {"sparsity": [1.0]}
    local = make_test_workdir(tmp_path / "local", repo_root, grid=grid, **train)
    work = make_test_workdir(tmp_path / "work", repo_root, grid=grid, **train)
    profile = site_profile(repo_root, "slurm-noacct", tmp_path / "profile", slurm_cluster)
    run_dir = "results/signal_N2/1/default/seed0"
    checkpoint = work / run_dir / "train/checkpoint.pt"

    # The uninterrupted reference first: never train concurrently with the SLURM job, two torch
    # processes with 2 threads each on 2 cores run ~20x slower.
    run_local(repo_root, local, "train_all")

    def running_train_with_checkpoint(jobs):
        for job in jobs:
            if job["comment"].startswith("rule_train") and job["state"] == "RUNNING":
                return job["id"] if checkpoint.exists() else None
        return None

    rc, killed = run_cancelling(
        snakemake_cmd(repo_root, work, "--profile", str(profile), "--verbose", "train_all"),
        work,
        running_train_with_checkpoint,
        timeout_s=SNAKEMAKE_TIMEOUT,
    )
    out = (work / "snakemake.out").read_text()
    assert killed, "no running train job with a checkpoint seen\n" + out[-5000:]
    assert rc == 0, out[-8000:]

    states = {j["id"]: j["state"] for j in squeue_jobs(work)}
    assert states.get(killed) == "CANCELLED", states
    assert len(sbatch_calls(out)["train"]) == 2  # resubmitted (profile retries >= 1)
    train_log = (work / "results/logs/train/signal_N2/1/default/seed0.log").read_text()
    assert re.search("resum", train_log, re.IGNORECASE), train_log[-3000:]
    info = json.loads((work / run_dir / "train/train_info.json").read_text())
    assert info["resumed_from_iteration"], info

    got = torch.load(work / run_dir / "train/model.pt", weights_only=True)
    ref = torch.load(local / run_dir / "train/model.pt", weights_only=True)
    assert got.keys() == ref.keys()
    for key in ref:
        assert torch.allclose(got[key], ref[key], atol=1e-6), key
