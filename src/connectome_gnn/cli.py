"""Command line helpers: ``connectome-gnn failed`` and ``connectome-gnn rerun-failed``.

``rerun-failed`` reruns only the runs whose training ended with status failed (their train
jobs and everything downstream), leaving every finished run untouched::

    connectome-gnn rerun-failed -- --profile profiles/local
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .io import DataError, read_json

TRAIN_INFO = "train_info.json"


def failed_runs(results: str | Path) -> list[Path]:
    """train_info.json files under ``results`` whose status is not ok (unreadable ones count)."""
    out = []
    for path in sorted(Path(results).glob(f"*/*/*/seed*/train/{TRAIN_INFO}")):
        try:
            status = read_json(path).get("status")
        except DataError:
            status = "unreadable"
        if status != "ok":
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connectome-gnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_failed = sub.add_parser("failed", help="list the train_info.json files of failed runs")
    p_failed.add_argument("--results", default="results")
    p_rerun = sub.add_parser(
        "rerun-failed", help="rerun failed runs with snakemake (arguments after -- go to snakemake)"
    )
    p_rerun.add_argument("--results", default="results")
    p_rerun.add_argument("snakemake_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    failed = failed_runs(args.results)
    if args.command == "failed":
        for path in failed:
            print(path)
        return 0
    if not failed:
        print(f"no failed runs under {args.results}", file=sys.stderr)
        return 0
    extra = [a for a in args.snakemake_args if a != "--"]
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    cmd = [exe, *extra, "--forcerun", *map(str, failed)]
    print(f"rerunning {len(failed)} failed run(s)", file=sys.stderr)
    os.execv(exe, cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
