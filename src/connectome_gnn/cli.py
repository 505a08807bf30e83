"""Command line helpers: failed runs, rerun-failed, and explorations.

``rerun-failed`` reruns only the runs whose training ended with status failed (their train
jobs and everything downstream), leaving every finished run untouched::

    connectome-gnn rerun-failed -- --profile profiles/local

``explore`` runs an exploration (UCB tree search over training configurations) for N more
iterations, resuming where it stopped (``--rerun-failed`` first trains its failed nodes again,
from scratch, and leaves every finished node untouched); ``explore-report`` regenerates its
tables and plots from the metrics files only; ``explore-add`` adds a hand-written (or
agent-written) training config as a node, which the next ``explore`` trains first; ``status``
prints the live state of its current batch (run by run, from the files the runs write)::

    connectome-gnn explore config/experiments/sparsity_landscape.yaml --iterations 8 -- \
        --profile profiles/slurm
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from . import __version__
from .io import DataError, read_json
from .layout import EXPLORATIONS, RUN_GLOB, TRAIN, TRAIN_INFO, set_aside_checkpoints

RESULTS_HELP = "the results directory of the workflow (default: %(default)s)"


def _snakemake() -> str:
    return shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


def failed_runs(results: str | Path) -> list[Path]:
    """train_info.json files under ``results`` whose status is not ok (unreadable ones count;
    a run pruned by an exploration is not failed: it resumes with ``explore --resume-pruned``)."""
    out = []
    for path in sorted(Path(results).glob(f"{RUN_GLOB}/{TRAIN}/{TRAIN_INFO}")):
        try:
            status = read_json(path).get("status")
        except DataError:
            status = "unreadable"
        if status not in ("ok", "pruned"):
            out.append(path)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``connectome-gnn <command> ...``."""
    parser = argparse.ArgumentParser(prog="connectome-gnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"connectome-gnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_failed = sub.add_parser("failed", help="list the train_info.json files of failed runs")
    p_failed.add_argument("--results", default="results", help=RESULTS_HELP)
    p_rerun = sub.add_parser(
        "rerun-failed", help="rerun failed runs with snakemake (arguments after -- go to snakemake)"
    )
    p_rerun.add_argument("--results", default="results", help=RESULTS_HELP)
    p_rerun.add_argument(
        "snakemake_args", nargs=argparse.REMAINDER, help="after --: arguments for snakemake"
    )
    sub.add_parser(
        "regenerate",
        help="rebuild the summary tables and plots from metrics files only (never retrains); "
        "arguments after -- go to snakemake",
    )
    p_exp = sub.add_parser("explore", help="run N more iterations of an exploration")
    p_rep = sub.add_parser("explore-report", help="regenerate an exploration's tables and plots")
    p_add = sub.add_parser("explore-add", help="add a training config YAML as an exploration node")
    p_status = sub.add_parser(
        "status",
        help="the live state of an exploration's current batch (reads only the runs' files)",
    )
    for p in (p_exp, p_rep, p_add, p_status):
        p.add_argument("experiment", help="experiment YAML (config/experiments/*.yaml)")
        p.add_argument(
            "--config", default="config/config.yaml", help="workflow config (default: %(default)s)"
        )
        p.add_argument(
            "--root",
            default=f"results/{EXPLORATIONS}",
            help="where explorations live (default: %(default)s/<name>/)",
        )
    p_exp.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="exploration iterations (batches) to run (default: until every block is done)",
    )
    p_exp.add_argument(
        "--snakefile", default="Snakefile", help="the workflow's Snakefile (default: %(default)s)"
    )
    p_exp.add_argument(
        "--rerun-failed",
        action="store_true",
        help="first train again the nodes whose status is failed (from scratch), then go on; "
        "with --iterations 0 only those",
    )
    p_exp.add_argument(
        "--resume-pruned",
        nargs="*",
        type=int,
        default=None,
        metavar="NODE",
        help="first train the pruned nodes (all, or the given node ids) to their end, from "
        "their checkpoints; with --iterations 0 only those",
    )
    p_exp.add_argument(
        "--poll-seconds",
        type=float,
        default=5.0,
        help="while a batch runs, look for newly finished runs every this many seconds and "
        "refresh the tables and tree plot (default: %(default)s)",
    )
    p_add.add_argument("train_config", help="a training config YAML (train schema)")
    p_add.add_argument("--parent", type=int, default=None, help="parent node id")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("explore", "regenerate") and "--" in argv:  # snakemake args
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    else:
        passthrough = []
    args = parser.parse_args(argv)
    if args.command.startswith("explore"):
        args.snakemake_args = passthrough
        return _explore(args)
    if args.command == "status":
        return _status(args)
    if args.command == "regenerate":
        exe = _snakemake()
        # mtime triggers only: edited training code/configs must not make Snakemake retrain
        cmd = [exe, "aggregate", "--forcerun", "aggregate", "--rerun-triggers", "mtime"]
        cmd += passthrough if passthrough else ["--cores", "1"]
        os.execv(exe, cmd)

    failed = failed_runs(args.results)
    if args.command == "failed":
        for path in failed:
            print(path)
        return 0
    if not failed:
        print(f"no failed runs under {args.results}", file=sys.stderr)
        return 0
    extra = [a for a in args.snakemake_args if a != "--"]
    exe = _snakemake()
    if "-n" not in extra and "--dry-run" not in extra:
        set_aside_checkpoints(failed)
    cmd = [exe, *extra, "--forcerun", *map(str, failed)]
    print(f"rerunning {len(failed)} failed run(s)", file=sys.stderr)
    os.execv(exe, cmd)
    return 1  # not reached


def _status(args) -> int:
    from .config import ConfigError, load_yaml
    from .explore.experiment import load_experiment
    from .explore.status import format_status
    from .explore.tree import ExplorationTree
    from .families.workflow_config import load_workflow_config

    try:
        name = load_experiment(args.experiment)["name"]
        workflow = load_workflow_config(load_yaml(args.config), source=str(args.config))
        tree = ExplorationTree.load(Path(args.root) / name)
        sys.stdout.write(format_status(tree, workflow["results_dir"]))
    except (ConfigError, DataError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


def _explore(args) -> int:
    from .config import ConfigError
    from .explore.driver import Explorer

    try:
        extra = args.snakemake_args
        kwargs = {}
        if args.command == "explore":
            if not args.poll_seconds > 0:
                raise ConfigError("--poll-seconds: must be > 0")
            kwargs = {"snakefile": args.snakefile, "poll_s": args.poll_seconds}
        explorer = Explorer(args.experiment, args.config, args.root, snakemake_args=extra, **kwargs)
        if args.command == "explore-report":
            explorer.write_reports()
        elif args.command == "explore-add":
            node = explorer.tree.add_external_file(args.train_config, parent=args.parent)
            explorer.tree.save()
            print(f"added node {node.node_id} ({explorer.tree.cfg_name(node)})")
        else:
            n = explorer.run(
                args.iterations,
                rerun_failed=args.rerun_failed,
                resume_pruned=args.resume_pruned,
            )
            print(f"{explorer.tree.name}: {n} run(s) trained; see {explorer.directory}")
    except (ConfigError, DataError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
