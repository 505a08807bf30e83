"""Deployment options: the workflow used as a Snakemake module, and jobs in an apptainer image."""

import subprocess
import sys
from pathlib import Path

from .conftest import make_workdir

BIN = Path(sys.executable).parent


def test_workflow_works_as_a_snakemake_module(tmp_path, repo_root):
    work = make_workdir(tmp_path, repo_root)
    (work / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module connectome_gnn:\n"
        f'    snakefile:\n        "{repo_root / "Snakefile"}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from connectome_gnn as cgnn_*\n"
    )
    res = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "--workflow-profile", "none"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    counts = {
        line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) == 2
    }
    assert counts["cgnn_train"] == "2" and counts["cgnn_aggregate"] == "1", out[-3000:]


def test_container_option_runs_jobs_in_the_image(tmp_path, repo_root):
    """With `container` set and --sdm apptainer every job runs in the image (a stand-in apptainer
    records the calls: none is installed here)."""
    work = make_workdir(tmp_path / "work", repo_root)
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    calls = tmp_path / "calls.log"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'if [ "$1" = "--version" ]; then echo "apptainer version 1.3.4"; exit 0; fi\n'
        "exit 3\n"
    )
    fake.chmod(0o755)
    image = work / "connectome-gnn.sif"
    image.touch()
    target = "results/signal_N2/1/simulation/seed0/simulation.json"
    cmd = [  # the target first: --config takes every value after it
        str(BIN / "snakemake"),
        target,
        "--snakefile",
        str(repo_root / "Snakefile"),
        "--cores",
        "1",
        "--workflow-profile",
        "none",
        "--sdm",
        "apptainer",
        "--config",
        f"container={image}",
    ]
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    log = calls.read_text() if calls.is_file() else ""
    runs = [line for line in log.splitlines() if line.startswith("exec ")]
    assert res.returncode != 0  # the stand-in runs nothing
    assert len(runs) == 1, res.stdout[-2000:] + res.stderr[-2000:]
    image_and_command = runs[0].split(f" {image} ", 1)[1]
    assert image_and_command.startswith("bash -c") and "simulate.py" in image_and_command
