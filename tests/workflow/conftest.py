import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def snakemake(
    workdir: Path, *args: str, repo: Path, timeout: int = 900
) -> subprocess.CompletedProcess:
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def make_workdir(tmp: Path, repo: Path, extra_cfgs: dict[str, Path] | None = None, **grid) -> Path:
    """A working directory with a copy of the shipped config (optionally more cfgs / another grid)."""
    shutil.copytree(repo / "config", tmp / "config", symlinks=False)
    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    for name, path in (extra_cfgs or {}).items():
        shutil.copy(path, tmp / "config/train" / f"{name}.yaml")
        cfg["grid"]["cfg"].append(name)
    cfg["grid"].update(grid)
    (tmp / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp


@pytest.fixture
def run_snakemake(repo_root):
    def _run(workdir, *args, **kw):
        return snakemake(workdir, *args, repo=repo_root, **kw)

    return _run
