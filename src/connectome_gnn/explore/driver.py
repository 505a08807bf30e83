"""Run an exploration end to end: propose -> train + analyse (Snakemake) -> update -> propose ...

Each batch of ``n_slots`` proposed nodes becomes one Snakemake invocation whose targets are the
nodes' ``metrics.json``; with ``--profile profiles/slurm`` the slots train as parallel GPU jobs.
Everything lives in ``<root>/<name>/`` (``nodes.yaml``, ``configs/``, ``workflow.yaml``,
``ucb_scores.*``, ``iteration_log.md``, ``summary/``).  The tree is saved before and after every
batch, so a crashed or cancelled driver resumes where it stopped: nodes still pending or running
are run again first (finished outputs are kept, train jobs resume from their checkpoints), then
new batches are proposed.  A run without ``metrics.json`` after its batch (the job failed even
after Snakemake's retries) becomes a failed node, and the exploration goes on.

``run(rerun_failed=True)`` first trains the failed nodes again: they become pending, their
checkpoints are set aside (checkpoint.failed.pt) and Snakemake is asked to force-rerun their
train jobs (``--forcerun`` on their train_info.json; missing outputs are rebuilt anyway), so
they train from scratch; finished nodes are not touched.

Pruning (the experiment's ``pruning``, :mod:`.pruning`): before a batch runs, every run of it
gets a ``score_request.json`` in its train directory (:func:`.checkpoint_score.write_request`)
with the rule, the experiment's score weights, the fractions to report at, and the score
curves (``scores.csv``) of the nodes of its block that finished, ok or pruned, in earlier
batches: its references, frozen there.  The training reports its score at those fractions
and stops with status ``pruned`` when the rule says so (the decision is taken in the scorer
run by the training, so the driver needs no polling).  ``run(resume_pruned=...)`` trains
pruned nodes to their end: they become pending with ``no_pruning`` (their request only
reports), and their train jobs are forced, so that they resume from their checkpoints.

Live refresh: Snakemake runs a whole batch in one call and tells the driver nothing until it
exits, so the default runner (:func:`watch`) starts it as a subprocess and, every
``poll_s`` seconds while it runs, calls :meth:`Explorer.refresh_finished`: every run of the
batch whose ``metrics.json`` was written since the batch started (an older file, e.g. of a
forced rerun not yet analysed again, does not count) is recorded in the tree at once, and
``nodes.yaml``, the UCB file, the iteration log, the summary tables and the tree plot are
rewritten: the reports follow every finished run, not only every batch.  Runs are recorded
as their files appear, but proposals still wait for the whole batch and the pruning
references are frozen before it, so what is proposed and pruned does not depend on the order
in which runs finish.  A runner passed in (tests) is called as ``runner(cmd)`` and may call
``refresh_finished`` itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from .. import layout
from ..aggregate.plots import plot_exploration_tree
from ..aggregate.report import exploration_summary
from ..config import ConfigError, load_yaml
from ..families.workflow_config import load_workflow_config
from ..io import atomic_path
from .checkpoint_score import read_curve, write_request
from .experiment import load_experiment
from .log import write_log
from .node import ExplorationError, Node
from .propose import propose_batch, write_configs
from .pruning import report_fractions
from .tree import ExplorationTree
from .ucb import write_ucb_scores

Runner = Callable[[list[str]], int]


def _snakemake_exe() -> str:
    return shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


#: seconds between two looks at the batch's metrics files while Snakemake runs
POLL_S = 5.0
#: seconds left to Snakemake to stop its jobs after the driver was interrupted
STOP_S = 60.0


def watch(cmd: list[str], poll: Callable[[], object], poll_s: float = POLL_S) -> int:
    """Run ``cmd`` (argv list) and call ``poll()`` every ``poll_s`` seconds until it exits;
    returns its exit status.  A failing ``poll`` is reported and the command goes on.  When
    the driver is interrupted (Ctrl-C reaches Snakemake too: same process group), Snakemake
    gets up to :data:`STOP_S` seconds to stop its jobs before it is terminated."""
    proc = subprocess.Popen(cmd)
    try:
        while True:
            try:
                return proc.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                pass
            try:
                poll()
            except Exception as exc:  # noqa: BLE001 - a refresh must not stop the batch
                print(f"warning: live refresh failed ({exc}); going on", file=sys.stderr)
    except BaseException:
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        raise


def run_dir(results: str, node: Node, cfg: str) -> Path:
    """The run directory of ``node`` trained with the configuration named ``cfg``."""
    sim = node.sim
    return layout.run_dir(results, sim["model"], sim["sparsity"], cfg, sim.get("seed", 0))


def sim_dir(results: str, node: Node) -> Path:
    """The simulation directory of ``node``'s block."""
    sim = node.sim
    return layout.simulation_dir(results, sim["model"], sim["sparsity"], sim.get("seed", 0))


class Explorer:
    """One exploration directory bound to a workflow configuration."""

    def __init__(
        self,
        experiment: str | Path,
        workflow_config: str | Path = "config/config.yaml",
        root: str | Path = f"results/{layout.EXPLORATIONS}",
        snakefile: str | Path = "Snakefile",
        snakemake_args: Sequence[str] = (),
        runner: Runner | None = None,
        poll_s: float = POLL_S,
    ):
        self.experiment = load_experiment(experiment)
        self.workflow_config_path = Path(workflow_config)
        self.workflow = load_workflow_config(
            load_yaml(self.workflow_config_path), source=str(self.workflow_config_path)
        )
        self.results = self.workflow["results_dir"]
        for i, block in enumerate(self.experiment["blocks"]):
            if block["model"] not in self.workflow["models"]:
                raise ConfigError(
                    f"{experiment}: field 'blocks[{i}].model': {block['model']!r} is not defined "
                    f"under models in {self.workflow_config_path}"
                )
        self.tree = ExplorationTree.open(Path(root) / self.experiment["name"], self.experiment)
        self.snakefile = Path(snakefile)
        self.snakemake_args = list(snakemake_args)
        self.runner = runner if runner is not None else self._watched_snakemake
        self.poll_s = float(poll_s)
        self.forcerun: list[Path] = []  # train_info.json files to force-rerun in the next batch
        self._batch: list[tuple[Node, Path]] = []  # (node, metrics.json) of the batch running
        self._batch_start = 0.0  # when it started (time.time())
        self.refreshes = 0  # live refreshes done (calls of refresh_finished that found runs)

    def _watched_snakemake(self, cmd: list[str]) -> int:
        return watch(cmd, self.refresh_finished, self.poll_s)

    @property
    def directory(self) -> Path:
        return self.tree.directory

    def unfinished(self) -> list[Node]:
        return [n for n in self.tree.nodes if n.status in ("pending", "running")]

    def _write_workflow_config(self, nodes: list[Node]) -> Path:
        """The grid of this batch: its cfgs under the block's model, sparsity and seed."""
        grid = {"model": [], "sparsity": [], "cfg": [], "seed": []}
        for node in nodes:
            values = {
                "model": node.sim["model"],
                "sparsity": float(node.sim["sparsity"]),
                "cfg": self.tree.cfg_name(node),
                "seed": int(node.sim.get("seed", 0)),
            }
            for key, value in values.items():
                if value not in grid[key]:
                    grid[key].append(value)
        cfg = {"grid": grid, "train_config_dir": str(self.directory / layout.EXPLORATION_CONFIGS)}
        path = self.directory / layout.EXPLORATION_WORKFLOW
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def train_dir(self, node: Node) -> Path:
        return run_dir(self.results, node, self.tree.cfg_name(node)) / layout.TRAIN

    def references(self, node: Node) -> dict[int, dict[float, float]]:
        """The score curves of the nodes of ``node``'s block that finished (ok or pruned) in an
        earlier batch: the runs the pruning rule compares ``node`` with."""
        out = {}
        for other in self.tree.block_nodes(node.block):
            if other.batch < node.batch and other.status in ("ok", "pruned"):
                curve = read_curve(self.train_dir(other))
                if curve:
                    out[other.node_id] = curve
        return out

    def write_score_requests(self, nodes: list[Node]) -> list[Path]:
        """The ``score_request.json`` of each node's run (none when pruning is off: a request
        left by an earlier setting is removed)."""
        settings = self.tree.experiment.get("pruning")
        if settings is None:
            for node in nodes:
                (self.train_dir(node) / layout.SCORE_REQUEST).unlink(missing_ok=True)
            return []
        paths = []
        for node in nodes:
            pruning = None if node.no_pruning else settings
            paths.append(
                write_request(
                    self.train_dir(node),
                    node=node.node_id,
                    sim_dir=sim_dir(self.results, node),
                    score_weights=self.tree.score_weights,
                    pruning=pruning,
                    fractions=report_fractions(settings),
                    references={} if pruning is None else self.references(node),
                )
            )
        return paths

    def run_batch(self, nodes: list[Node]) -> int:
        """Train and analyse ``nodes`` with Snakemake, then record their metrics."""
        write_configs(self.tree, nodes)
        self.write_score_requests(nodes)
        for node in nodes:
            self.tree.set_status(node.node_id, "running")
        self.tree.save()
        cfg_path = self._write_workflow_config(nodes)
        targets = [
            str(run_dir(self.results, n, self.tree.cfg_name(n)) / layout.METRICS) for n in nodes
        ]
        # targets first and --configfile (which takes several values) last, so that neither
        # swallows the other nor a user argument taking optional values (e.g. --quiet)
        cmd = [
            _snakemake_exe(),
            *targets,
            "--snakefile",
            str(self.snakefile),
            *self.snakemake_args,
            *(["--forcerun", *map(str, self.forcerun)] if self.forcerun else []),
            "--configfile",
            str(self.workflow_config_path),
            str(cfg_path),
        ]
        self._batch = [(n, Path(t)) for n, t in zip(nodes, targets, strict=True)]
        self._batch_start = time.time()
        try:
            rc = self.runner(cmd)
        finally:
            self._batch = []
        self.forcerun = []
        if rc != 0 and not any(Path(t).is_file() for t in targets):
            # nothing ran (bad arguments, locked directory, cluster down ...): keep the nodes
            # unfinished so that the next call retries them instead of recording failures
            raise ExplorationError(
                f"snakemake exited with status {rc} before producing any result of batch "
                f"{nodes[0].batch} (nodes {nodes[0].node_id}-{nodes[-1].node_id}); they stay "
                f"unfinished in {self.tree.path} and run first when you rerun this command"
            )
        for node, target in zip(nodes, targets, strict=True):
            if self.tree[node.node_id].finished:
                continue  # recorded while the batch ran (refresh_finished)
            if Path(target).is_file():
                self.tree.update_from_file(node.node_id, target)
            else:
                self.tree.update(
                    node.node_id,
                    None,
                    status="failed",
                    reason=f"no {target} after the batch (snakemake exit {rc}; see its logs)",
                )
        self.tree.save()
        self.write_reports()
        return rc

    def refresh_finished(self) -> list[Node]:
        """Record the runs of the running batch whose ``metrics.json`` appeared since it
        started and, when there are any, save the tree and rewrite every report (tables and
        tree plot); returns the nodes recorded.  Called while Snakemake runs (:func:`watch`)."""
        new = []
        for node, target in self._batch:
            if self.tree[node.node_id].finished:
                continue
            try:
                fresh = target.stat().st_mtime >= self._batch_start
            except OSError:
                continue
            if fresh:
                new.append(self.tree.update_from_file(node.node_id, target))
        if new:
            self.tree.save()
            self.write_reports(live=True)
            self.refreshes += 1
            done = sum(self.tree[n.node_id].finished for n, _ in self._batch)
            for node in new:
                print(
                    f"node {node.node_id} {node.status} ({done}/{len(self._batch)} of batch "
                    f"{node.batch}): reports refreshed",
                    file=sys.stderr,
                    flush=True,
                )
        return new

    def write_reports(self, live: bool = False) -> None:
        """The UCB file, the iteration log, the summary tables and the plots; ``live`` (a
        refresh while a batch runs): of the plots only the tree, the others (seconds each)
        wait for the end of the batch."""
        write_ucb_scores(self.tree)
        write_log(self.tree)
        runs = self.tree.to_frame(include_unfinished=False)
        summary = self.directory / layout.SUMMARY
        exploration_summary(runs, summary, self.tree.score_weights, plots=not live)
        if live:
            plot_exploration_tree(runs, summary / layout.EXPLORATION_TREE_PLOT)

    def reset_failed(self) -> list[Node]:
        """Make every failed node pending again and prepare its rerun from scratch (checkpoint
        set aside, train job forced); returns those nodes."""
        failed = [n for n in self.tree.nodes if n.status == "failed"]
        infos = []
        for node in failed:
            run_directory = run_dir(self.results, node, self.tree.cfg_name(node))
            info = run_directory / layout.TRAIN / layout.TRAIN_INFO
            if info.is_file():
                infos.append(info)
            self.tree.set_status(node.node_id, "pending")
        layout.set_aside_checkpoints(infos)
        self.forcerun += infos
        self.tree.save()
        return failed

    def reset_pruned(self, node_ids: Sequence[int] | None = None) -> list[Node]:
        """Make pruned nodes (all, or those of ``node_ids``) pending with ``no_pruning``, their
        train jobs forced: they resume from their checkpoints and train to their end."""
        pruned = [n for n in self.tree.nodes if n.status == "pruned"]
        if node_ids:
            wanted = {int(i) for i in node_ids}
            bad = sorted(wanted - {n.node_id for n in pruned})
            if bad:
                raise ExplorationError(
                    f"{self.tree.path}: node(s) {', '.join(map(str, bad))} not pruned"
                )
            pruned = [n for n in pruned if n.node_id in wanted]
        for node in pruned:
            node.no_pruning = True
            self.tree.set_status(node.node_id, "pending")
            info = self.train_dir(node) / layout.TRAIN_INFO
            if info.is_file():
                self.forcerun.append(info)
        self.tree.save()
        return pruned

    def run(
        self,
        iterations: int | None = None,
        rerun_failed: bool = False,
        resume_pruned: Sequence[int] | None = None,
    ) -> int:
        """Run unfinished nodes (with ``rerun_failed`` also the failed ones, from scratch; with
        ``resume_pruned`` (node ids, [] = all) the pruned ones, to their end), then new batches
        until at least ``iterations`` more runs were proposed (None: until every block is done;
        batches are kept whole).  Returns the number of runs trained."""
        done = 0
        if rerun_failed:
            failed = self.reset_failed()
            print(f"rerunning {len(failed)} failed node(s) of {self.tree.name}", file=sys.stderr)
        if resume_pruned is not None:
            resumed = self.reset_pruned(resume_pruned)
            print(f"resuming {len(resumed)} pruned node(s) of {self.tree.name}", file=sys.stderr)
        pending = self.unfinished()
        if pending:
            print(
                f"resuming {self.tree.name}: {len(pending)} unfinished node(s)",
                file=sys.stderr,
            )
            self.run_batch(pending)
            done += len(pending)
        proposed = 0
        while iterations is None or proposed < iterations:
            nodes = propose_batch(self.tree)
            if not nodes:
                break
            proposed += len(nodes)
            self.run_batch(nodes)
            done += len(nodes)
        return done
