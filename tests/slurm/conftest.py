"""A real single-node SLURM (tools/slurm/local-slurm.sh) and helpers to run the shipped profiles on it.

The session fixture ``slurm_cluster`` brings the cluster up (apt install on first use, ~20-40 s;
about a second when it is already up) when running as root on a machine with apt-get, and fails
loudly if that does not work there. Elsewhere (not root, no apt-get) the tests are skipped.
Set CONNECTOME_GNN_SLURM=0 to skip them on purpose. The cluster is left running afterwards
(``tools/slurm/local-slurm.sh down`` stops it).

Timings (bring-up and each test) are printed in the terminal summary and written to
/tmp/connectome-gnn-slurm-timing.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..workflow.conftest import make_workdir

BIN = Path(sys.executable).parent
TIMING_FILE = Path("/tmp/connectome-gnn-slurm-timing.json")
TIMINGS: dict = {"bring_up_s": None, "tests_s": {}}

# Site-specific values of the shipped profiles that the tests replace (the structure stays).
TEST_ACCOUNT = "ci"
CPU_PARTITION = "cpu"
GPU_PARTITION = "gpu"


def _write_timings() -> None:
    try:
        TIMING_FILE.write_text(json.dumps(TIMINGS, indent=2))
    except OSError:
        pass


def pytest_terminal_summary(terminalreporter):
    if TIMINGS["bring_up_s"] is None and not TIMINGS["tests_s"]:
        return
    terminalreporter.section("local SLURM timings")
    if TIMINGS["bring_up_s"] is not None:
        terminalreporter.write_line(
            f"cluster bring-up (tools/slurm/local-slurm.sh up): {TIMINGS['bring_up_s']:.1f} s"
        )
    for name, secs in TIMINGS["tests_s"].items():
        terminalreporter.write_line(f"{name}: {secs:.1f} s")
    terminalreporter.write_line(f"(also in {TIMING_FILE})")


@pytest.fixture(autouse=True)
def _time_test(request):
    t0 = time.perf_counter()
    yield
    TIMINGS["tests_s"][request.node.name] = round(time.perf_counter() - t0, 1)
    _write_timings()


@pytest.fixture(scope="session")
def slurm_cluster(repo_root):
    """Bring the local SLURM cluster up once per session (with accounting and one fake GPU)."""
    if os.environ.get("CONNECTOME_GNN_SLURM") == "0":
        pytest.skip("CONNECTOME_GNN_SLURM=0: local SLURM tests disabled")
    if os.geteuid() != 0:
        pytest.skip("local SLURM tests need root (they install and start slurmctld/slurmd)")
    if shutil.which("apt-get") is None:
        pytest.skip("local SLURM tests need apt-get (Debian/Ubuntu) to install SLURM")
    script = repo_root / "tools/slurm/local-slurm.sh"
    t0 = time.perf_counter()
    res = subprocess.run(["bash", str(script), "up"], capture_output=True, text=True, timeout=900)
    secs = time.perf_counter() - t0
    TIMINGS["bring_up_s"] = round(secs, 1)
    TIMINGS["bring_up_log"] = res.stderr.strip().splitlines()[-1:] if res.stderr else []
    _write_timings()
    print(f"\nlocal SLURM up in {secs:.1f} s: {res.stderr.strip().splitlines()[-1:]}")
    if res.returncode != 0:
        pytest.fail(
            f"tools/slurm/local-slurm.sh up failed (rc {res.returncode}) after {secs:.0f} s:\n"
            f"{res.stdout[-3000:]}\n{res.stderr[-5000:]}",
            pytrace=False,
        )
    node = subprocess.run(
        ["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=True
    ).stdout
    mem = int(re.search(r"RealMemory=(\d+)", node).group(1))
    cpus = int(re.search(r"CPUTot=(\d+)", node).group(1))
    return {"real_memory_mb": mem, "cpus": cpus}


def shrink_config(work: Path, n_frames: int = 2000, **train) -> None:
    """Make the copied tiny default quicker (fewer frames and iterations); train/analyze still run."""
    cfg_path = work / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    for model in cfg["models"].values():
        model["n_frames"] = n_frames
    cfg_path.write_text(yaml.safe_dump(cfg))
    train_path = work / "config/train/default.yaml"
    tcfg = yaml.safe_load(train_path.read_text())
    tcfg.update({"data_augmentation_loop": 20, **train})
    train_path.write_text(yaml.safe_dump(tcfg))


def make_test_workdir(tmp: Path, repo: Path, grid: dict | None = None, **train) -> Path:
    work = make_workdir(tmp, repo, **(grid or {}))
    shrink_config(work, **train)
    return work


def site_profile(repo: Path, name: str, dest: Path, cluster: dict) -> Path:
    """A copy of profiles/<name> with only its site-specific values set for the local cluster."""
    prof = yaml.safe_load((repo / "profiles" / name / "config.yaml").read_text())
    prof["latency-wait"] = 5
    prof["slurm-init-seconds-before-status-checks"] = 5  # plugin default 40 s
    prof["slurm-keep-successful-logs"] = True
    defaults = prof["default-resources"]
    defaults["slurm_partition"] = CPU_PARTITION
    if "slurm_account" in defaults:
        defaults["slurm_account"] = TEST_ACCOUNT
    train = prof["set-resources"]["train"]
    train["slurm_partition"] = GPU_PARTITION
    if "cpus_per_gpu" in train:  # must fit on the one node
        train["cpus_per_gpu"] = min(int(train["cpus_per_gpu"]), cluster["cpus"])
    if cluster["real_memory_mb"] < 17000:  # train asks 8 GB x attempt; small CI machines
        defaults["mem_mb"] = 1000
        train["mem_mb"] = 2000
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


def snakemake_cmd(repo: Path, work: Path, *args: str) -> list[str]:
    return [
        str(BIN / "snakemake"),
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(work),
        "--workflow-profile",
        "none",
        *args,
    ]


def run_local(
    repo: Path, work: Path, *args: str, timeout: int = 600
) -> subprocess.CompletedProcess:
    """The workflow run locally (2 cores); ``args``: targets and options (before --resources,
    which would take a target for a resource)."""
    res = subprocess.run(
        snakemake_cmd(repo, work, "--cores", "2", *args, "--resources", "gpu=1"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-5000:]
    return res


def sbatch_calls(output: str) -> dict[str, list[str]]:
    """The plugin's sbatch command lines (logged with --verbose), by rule (`--comment rule_X...`)."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        if "sbatch call:" not in line:
            continue
        call = line.split("sbatch call:", 1)[1].split("--wrap=", 1)[0]
        comment = re.search(r"--comment\s+rule_([A-Za-z0-9]+)", call)
        assert comment, line
        calls.setdefault(comment.group(1), []).append(call)
    return calls


def slurm_jobs(output: str) -> dict[str, str]:
    """SLURM job id -> rule (or group) name, from the plugin's "submitted" log lines."""
    found = re.findall(
        r"has been submitted with SLURM jobid (\d+) \(log: .*?/slurm_logs/(?:rule|group)_([A-Za-z0-9]+)",
        output,
    )
    return dict(found)


def sacct_fields(job_ids: list[str], fields: str = "Account,AllocTRES") -> dict[str, list[str]]:
    """JobID -> fields from the accounting database (retried: slurmdbd lags a little)."""
    rows: dict[str, list[str]] = {}
    for _ in range(20):
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", f"JobID,{fields}", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
        ).stdout
        rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if "|" in line}
        if set(job_ids) <= set(rows) and all(all(v) for v in rows.values()):
            break
        time.sleep(0.5)
    return rows


CORE_COLUMNS = {
    "status",
    "classification",
    "final_loss",
    "iterations",
    "connectivity_R2",
    "W_pearson",
    "cluster_accuracy",
    "test_R2",
}
TIMING_COLUMNS = {"training_time_min", "frames_per_s", "wall_time_s"}


def squeue_jobs(work: Path) -> list[dict]:
    """The local cluster's jobs (any state squeue still shows) submitted from ``work``: id,
    state and comment (the plugin's ``rule_<rule or group name>[_wildcards_...]``)."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i|%T|%k|%Z"],
        capture_output=True,
        text=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        jobid, state, comment, wd = line.split("|", 3)
        if Path(wd) == work:
            jobs.append({"id": jobid, "state": state, "comment": comment})
    return jobs


def run_cancelling(
    cmd: list[str], work: Path, pick, wait_s: float = 300, timeout_s: float = 480
) -> tuple[int, str | None]:
    """Run Snakemake (``cmd``; output in ``work/snakemake.out``) and scancel the job that
    ``pick(squeue_jobs(work))`` names (a job id, or None to look again 0.1 s later, for up to
    ``wait_s``); then wait for Snakemake to end.  Returns (its exit code, the cancelled job id or
    None).  Snakemake and its jobs are killed when it outlives ``timeout_s``."""
    with open(work / "snakemake.out", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        killed, deadline = None, time.monotonic() + wait_s
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            killed = pick(squeue_jobs(work))
            if killed is not None:
                subprocess.run(["scancel", killed], check=True)
            time.sleep(0.1)
        return proc.wait(timeout=timeout_s), killed
    finally:
        if proc.poll() is None:
            proc.kill()
            for job in squeue_jobs(work):
                subprocess.run(["scancel", job["id"]], capture_output=True)


def assert_same_values(a, b, tol: float, where: str = "") -> None:
    """Equal structures; numbers within ``tol`` (absolute); timing fields ignored."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            if key not in TIMING_COLUMNS:
                assert_same_values(a[key], b[key], tol, f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_values(x, y, tol, f"{where}[{i}]")
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        assert a == b, f"{where}: {a!r} != {b!r}"
    elif isinstance(a, int | float):
        assert isinstance(b, int | float), f"{where}: {a!r} != {b!r}"
        assert abs(a - b) <= tol or (a != a and b != b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_summary(slurm_work: Path, local_work: Path, tol: float = 1e-5) -> None:
    """results/summary/runs.csv of a SLURM run equals the local run's rows for the same runs."""
    import pandas as pd

    key = ["model", "sparsity", "cfg", "seed"]
    got = pd.read_csv(slurm_work / "results/summary/runs.csv", dtype={"sparsity": str})
    ref = pd.read_csv(local_work / "results/summary/runs.csv", dtype={"sparsity": str})
    ref = ref.merge(got[key], on=key, how="inner")
    assert len(got) and len(got) == len(ref), (got[key], ref[key])
    # Compare every column both have (the library may add columns while this file stays put), but
    # at least the recovery metrics.
    columns = [c for c in got.columns if c in set(ref.columns)]
    assert set(columns) >= CORE_COLUMNS, CORE_COLUMNS - set(columns)
    got, ref = got[columns], ref[columns]
    got = got.sort_values(key).reset_index(drop=True)
    ref = ref.sort_values(key).reset_index(drop=True)
    rows_got = json.loads(got.to_json(orient="records"))
    rows_ref = json.loads(ref.to_json(orient="records"))
    assert_same_values(rows_got, rows_ref, tol, "runs.csv")
