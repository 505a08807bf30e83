"""Many short jobs: a 1,000-run grid must not cost a SLURM submission per analysis."""

import re
import shutil

import yaml

from .conftest import make_workdir


def test_thousand_run_grid_submits_grouped_analyses(tmp_path, repo_root, run_snakemake):
    work = make_workdir(tmp_path, repo_root)
    cfgs = [f"c{i}" for i in range(10)]
    for name in cfgs:
        shutil.copy(work / "config/train/default.yaml", work / f"config/train/{name}.yaml")
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["grid"] = {
        "model": ["signal_N2"],
        "sparsity": [1.0, 0.75, 0.5, 0.25, 0.1],
        "cfg": cfgs,
        "seed": list(range(20)),
    }
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_snakemake(work, "--profile", str(repo_root / "profiles/slurm"), "-n")
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines() + res.stderr.splitlines()
    count = {
        kind: sum(1 for ln in lines if re.search(pattern, ln))
        for kind, pattern in {
            "simulate": r"^\s*rule simulate:",
            "train": r"^\s*rule train:",
            "analyze": r"^\s*rule analyze:",
            "analyze_groups": r"Group job analyze",
        }.items()
    }
    # 5 sparsities x 20 seeds simulations (shared by the 10 cfgs); one GPU job per run;
    # 1,000 analyses in 20 SLURM jobs of 50 (profile: group-components analyze=50);
    # aggregate and the target rules run on the submit host (localrules)
    assert count == {"simulate": 100, "train": 1000, "analyze": 1000, "analyze_groups": 20}, count
    submissions = count["simulate"] + count["train"] + count["analyze_groups"]
    print(f"\n1,000-run grid: {submissions} SLURM submissions (2,101 jobs ungrouped)")
    assert submissions == 1120
