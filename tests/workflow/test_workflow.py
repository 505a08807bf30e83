"""The tiny default workflow end to end, plus dry runs of the profiles and bad-input handling."""

import base64
import io
import json
import re
import zipfile

import pandas as pd
import pytest
import yaml
from PIL import Image

from .conftest import make_workdir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo_root):
    """Run the shipped tiny default (plus one deliberately diverging cfg) once for this module."""
    from .conftest import snakemake

    work = make_workdir(
        tmp_path_factory.mktemp("tiny"),
        repo_root,
        extra_cfgs={"diverge": repo_root / "tests/data/train/diverge.yaml"},
    )
    # two 1-thread trainings at a time (the tiny models gain nothing from a second thread)
    res = snakemake(
        work, "--cores", "2", "--resources", "gpu=2", "--set-threads", "train=1", repo=repo_root
    )
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-5000:]
    return work


@pytest.mark.slow
def test_tiny_default_recovers_connectivity_and_types(tiny_run):
    runs = pd.read_parquet(tiny_run / "results/summary/runs.parquet")
    assert len(runs) == 4  # 2 sparsities x (default + diverge) x 1 seed
    dense = runs[(runs.sparsity == "1") & (runs.cfg == "default")].iloc[0]
    assert dense.status == "ok"
    assert dense.connectivity_R2 >= 0.99, dense.connectivity_R2
    assert dense.cluster_accuracy >= 0.95, dense.cluster_accuracy
    assert dense.classification == "converged"
    csv = pd.read_csv(tiny_run / "results/summary/runs.csv")
    assert len(csv) == 4
    assert (
        "## Best run per (model, filling factor)"
        in (tiny_run / "results/summary/summary.md").read_text()
    )


@pytest.mark.slow
def test_failed_run_is_recorded_and_dag_completes(tiny_run):
    runs = pd.read_parquet(tiny_run / "results/summary/runs.parquet")
    failed = runs[runs.cfg == "diverge"]
    assert len(failed) == 2 and set(failed.status) == {"failed"}
    assert set(failed.classification) == {"failed"}
    metrics = json.loads(
        next((tiny_run / "results/signal_N2/1/diverge").glob("seed0/metrics.json")).read_text()
    )
    assert metrics["status"] == "failed" and "divergence_threshold" in metrics["reason"]


@pytest.mark.slow
def test_every_log_ends_with_a_summary_line(tiny_run):
    logs = tiny_run / "results/logs"

    def last_line(path):
        text = path.read_text()
        assert "\r" not in text, f"{path}: carriage-return progress in a log file"
        return text.strip().splitlines()[-1]

    assert last_line(logs / "simulate/signal_N2/1/seed0.log").startswith(
        "simulate summary: family signal, filling_factor 1, n_neurons 100, n_frames 5000"
    )
    train = (logs / "train/signal_N2/1/default/seed0.log").read_text()
    assert re.search(r"^train: \d+/\d+ \(100\.0 %\), loss [\d.e+-]+, ", train, re.M), train[-2000:]
    assert re.match(
        r"train summary: status ok, final_loss [\d.e+-]+, time_s [\d.]+, iterations \d+, "
        r"outputs .*results/signal_N2/1/default/seed0/train$",
        last_line(logs / "train/signal_N2/1/default/seed0.log"),
    )
    failed = last_line(logs / "train/signal_N2/1/diverge/seed0.log")
    assert failed.startswith("train summary: status failed") and "divergence_threshold" in failed
    analyze = last_line(logs / "analyze/signal_N2/1/default/seed0.log")
    assert re.match(
        r"analyze summary: status ok, connectivity_R2 0\.99\d*, cluster_accuracy ", analyze
    )
    assert "metrics.json and 6 plots in" in analyze
    assert last_line(logs / "aggregate/aggregate.log").startswith(
        "aggregate summary: runs 4, ok 2, not_ok 2, outputs runs, best, replicates, "
        "classification tables and summary.md in results/summary"
    )


@pytest.mark.slow
def test_outputs_and_nothing_left_to_do(tiny_run, run_snakemake):
    sim = tiny_run / "results/signal_N2/1/simulation/seed0"
    for name in (
        "activity.zarr",
        "connectivity.npz",
        "neurons.csv",
        "simulation.json",
        "simulation.png",
    ):
        assert (sim / name).exists(), name
    run = tiny_run / "results/signal_N2/1/default/seed0"
    for name in (
        "train/model.pt",
        "train/checkpoint.pt",
        "train/loss.csv",
        "train/train_info.json",
        "metrics.json",
    ):
        assert (run / name).exists(), name
    assert {p.name for p in (run / "plots").iterdir()} >= {
        "W_scatter.png",
        "embeddings.png",
        "mlp_curves.png",
        "loss.png",
        "per_type_R2.png",
        "rollout.png",
    }
    res = run_snakemake(tiny_run, "-n", "--cores", "1")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


@pytest.mark.slow
def test_regenerate_tables_without_retraining(tiny_run, run_snakemake):
    summary = tiny_run / "results/summary/runs.parquet"
    before = summary.stat().st_mtime_ns
    res = run_snakemake(tiny_run, "aggregate", "--forcerun", "aggregate", "--cores", "1")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "rule train" not in out and "rule analyze" not in out and "rule simulate" not in out
    assert summary.stat().st_mtime_ns > before


@pytest.mark.slow
def test_regenerate_ignores_edited_training_configs(tiny_run, repo_root):
    """Editing a training config would make plain Snakemake retrain (params trigger); the
    documented regenerate command (mtime triggers) rebuilds only the tables and plots."""
    import subprocess
    import sys
    from pathlib import Path

    cfg = tiny_run / "config/train/default.yaml"
    original = cfg.read_text()
    cfg.write_text(original.replace("description:", "description: edited by hand -"))
    try:
        base = ["--snakefile", str(repo_root / "Snakefile"), "--workflow-profile", "none"]
        plain = subprocess.run(
            [
                str(Path(sys.executable).parent / "snakemake"),
                *base,
                "-n",
                "aggregate",
                "--forcerun",
                "aggregate",
            ],
            cwd=tiny_run,
            capture_output=True,
            text=True,
        )
        assert "rule train" in plain.stdout + plain.stderr  # what the command avoids
        cli = Path(sys.executable).parent / "connectome-gnn"
        res = subprocess.run(
            [str(cli), "regenerate", "--", *base, "--cores", "1"],
            cwd=tiny_run,
            capture_output=True,
            text=True,
        )
        out = res.stdout + res.stderr
        assert res.returncode == 0, out
        assert "rule aggregate" in out
        assert "rule train" not in out and "rule analyze" not in out
        assert (tiny_run / "results/summary/analysis/sparsity_landscape.csv").is_file()
        assert (tiny_run / "results/summary/analysis/pareto_front.png").is_file()
    finally:
        cfg.write_text(original)


def _embedded(html: str) -> dict[str, list[bytes]]:
    """The files a self-contained Snakemake report embeds (base64 data URIs), by file name (one
    name can be several files: best.html of the summary and of the analysis, a plot per run)."""
    found = re.findall(
        r"data:([\w/+.-]+);charset=[^;]*;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", html
    )
    files: dict[str, list[bytes]] = {}
    for _, name, data in found:
        files.setdefault(name, []).append(base64.b64decode(data))
    return files


@pytest.mark.slow
def test_html_report(tiny_run, run_snakemake):
    res = run_snakemake(tiny_run, "--report", "results/report.html")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    html = (tiny_run / "results/report.html").read_text(errors="replace")
    files = _embedded(html)
    # the summary tables are inline HTML tables (besides their CSV downloads)
    runs = files["runs.html"][0].decode()
    assert "<h1>All runs</h1>" in runs and "<th>filling factor</th>" in runs
    assert runs.count("<tr>") == 1 + 4 and "diverge" in runs
    assert any("<th>converged</th>" in f.decode() for f in files["classification.html"])
    title = "<h1>Best run per (model, filling factor)</h1>"
    assert any(title in f.decode() for f in files["best.html"])
    assert {"runs.csv", "best.csv", "classification.csv"} <= set(files)
    assert "sparsity_landscape.html" in files  # analysis tables inline too
    # the title page shows the grid, not a template
    assert "{model} x {sparsity}" not in html and "filling factors: 1, 0.5" in html
    assert "training configurations: default, diverge" in html
    # the new plots are there, and every plot is a real figure: the old "nothing to plot"
    # placeholders were 440 x 330 px
    assert {"W_scatter.png", "per_type_R2.png", "rollout.png", "simulation.png"} <= set(files)
    pngs = [(name, png) for name, found in files.items() if name.endswith(".png") for png in found]
    assert len(pngs) >= 2 * 6 + 2 + 2  # ok runs' plots, simulations, analysis
    for name, png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and min(image.size) >= 400, (name, image.size)
        assert len(png) > 4_000, (name, len(png))


@pytest.mark.slow
def test_zip_report(tiny_run, run_snakemake):
    """--report report.zip: the same report with the files beside report.html, not inlined."""
    res = run_snakemake(tiny_run, "--report", "results/report.zip")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    with zipfile.ZipFile(tiny_run / "results/report.zip") as archive:
        names = archive.namelist()
        index = next(n for n in names if n.endswith("/report.html"))
        page = archive.read(index).decode()
        tables = [n for n in names if n.endswith("/runs.html")]
        assert len(tables) == 1 and "<th>filling factor</th>" in archive.read(tables[0]).decode()
    assert sum(n.endswith(".png") for n in names) >= 2 * 6 + 2  # run plots of the ok runs, sims
    assert "data:image/png" not in page  # the plots are files beside report.html, not inlined


def test_dry_run_counts_jobs(tmp_path, repo_root, run_snakemake):
    work = make_workdir(tmp_path, repo_root, seed=[0, 1])
    res = run_snakemake(work, "-n", "--cores", "1")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    counts = dict(
        line.split()[:2]
        for line in out.splitlines()
        if line.split()[:1] in (["simulate"], ["train"], ["analyze"], ["aggregate"])
        and len(line.split()) == 2
    )
    assert counts == {"simulate": "4", "train": "4", "analyze": "4", "aggregate": "1"}


@pytest.mark.parametrize("profile", ["slurm", "slurm-noacct"])
def test_slurm_profile_dry_run(tmp_path, repo_root, run_snakemake, profile):
    budget = tmp_path / "budget.yaml"  # the default recipe with a 10-hour time budget
    budget.write_text((repo_root / "config/train/default.yaml").read_text() + "max_minutes: 600\n")
    work = make_workdir(tmp_path / "work", repo_root, {"budget": budget}, sparsity=[1.0])
    res = run_snakemake(work, "-n", "--profile", str(repo_root / "profiles" / profile))
    out = res.stdout + res.stderr
    flat = out.replace(" ", "")
    assert res.returncode == 0, out
    assert "rule train" in out and "gpu=1" in flat
    # the SLURM time limit (runtime, minutes) covers a time-budgeted training: 600 * 1.25 + 15
    assert {"240", "765"} <= set(re.findall(r"runtime=(\d+)", flat))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["grid"].update(sparsity=[1.5]), "field 'grid.sparsity[0]'"),
        (lambda c: c["models"]["signal_N2"].update(n_neurons=-3), "field 'n_neurons'"),
        (lambda c: c["models"]["signal_N2"].update(family="nope"), "unknown model family 'nope'"),
        (lambda c: c["grid"].update(cfg=["missing_cfg"]), "missing_cfg.yaml: file not found"),
        (lambda c: c.update(typo=1), "unknown key"),
    ],
)
def test_bad_config_gives_one_clear_error(tmp_path, repo_root, run_snakemake, edit, message):
    work = make_workdir(tmp_path, repo_root)
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    edit(cfg)
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_snakemake(work, "-n", "--cores", "1")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert message in out, out
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_rerun_failed_reruns_exactly_the_failed_runs(tiny_run, repo_root):
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "connectome-gnn"
    listed = subprocess.run([str(cli), "failed"], cwd=tiny_run, capture_output=True, text=True)
    assert sorted(listed.stdout.split()) == [
        "results/signal_N2/0.5/diverge/seed0/train/train_info.json",
        "results/signal_N2/1/diverge/seed0/train/train_info.json",
    ]
    args = [
        "--snakefile",
        str(repo_root / "Snakefile"),
        "--workflow-profile",
        "none",
        "-n",
        "--cores",
        "1",
    ]
    res = subprocess.run(
        [str(cli), "rerun-failed", "--", *args], cwd=tiny_run, capture_output=True, text=True
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    stats = {}
    for line in out.splitlines():
        parts = line.split()
        if (
            len(parts) == 2
            and parts[0] in ("simulate", "train", "analyze", "aggregate")
            and parts[1].isdigit()
        ):
            stats[parts[0]] = int(parts[1])
    assert stats == {"train": 2, "analyze": 2, "aggregate": 1}, out
