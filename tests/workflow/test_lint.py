"""Static checks that are part of the test command: snakemake --lint, ruff, snakefmt."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_snakemake_lint(repo_root):
    res = _run([str(BIN / "snakemake"), "--lint", "--workflow-profile", "none"], repo_root)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition" in out, out


def test_lint_catches_a_rule_without_log(repo_root, tmp_path):
    """The lint check above can fail: a rule without log/conda is reported."""
    (tmp_path / "Snakefile").write_text(
        'rule bad:\n    output:\n        "x.txt"\n    shell:\n        "touch {output}"\n'
    )
    res = _run([str(BIN / "snakemake"), "--lint", "--workflow-profile", "none"], tmp_path)
    out = res.stdout + res.stderr
    assert "No log directive" in out and "Congratulations" not in out


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--check", "Snakefile", "rules"],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_linters_clean(repo_root, cmd):
    res = _run([str(BIN / cmd[0]), *cmd[1:]], repo_root)
    assert res.returncode == 0, res.stdout + res.stderr
