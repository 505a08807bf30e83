"""Propose the next batch of an exploration.

:func:`propose_batch` returns (and adds to the tree) the pending nodes of the next batch:

* **first batch of a block** (the block has no node yet): slot 0 is the block's *root*: the
  block's base training configuration, or - with ``carry_best`` (default) and from the second
  block on - the configuration of the best ``ok`` node of the previous block (its ``note``
  says which; its ``parent`` stays empty because the UCB tree is per block, as in the
  reference).  Slots 1.. are mutations of the root with the root as parent;
* **later batches**: parents are picked by UCB/PUCT (:func:`.ucb.select_parents`) among the
  nodes of the block, and each slot mutates its parent's configuration.

A batch never straddles two blocks: it is cut at the block's last iteration (so with
``n_iter_block`` a multiple of ``n_slots`` every batch is full).  Mutations draw from
``numpy.random.default_rng([seed, iteration, slot])``, so the proposal is a pure function of
the tree and the experiment: the same tree gives the same batch.  Each proposed configuration
is validated against ``train.schema.yaml``.  Once every block has its iterations the result is
an empty list.

With ``form: optuna-tpe`` the slots after the root are drawn by Optuna's TPE sampler instead
(:mod:`.optuna_tpe`; their parent is the block's root).

Call ``tree.save()`` after proposing; :func:`write_configs` writes the nodes' training
configurations as ``<cfg>.yaml`` files usable as a ``train_config_dir``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from ..config import validate
from ..io import atomic_path
from ..layout import EXPLORATION_CONFIGS
from ..text import format_mutation, plain
from .experiment import space_of
from .mutate import ParamSpec, mutate, slot_rng
from .node import Node
from .optuna_tpe import tpe_configs
from .tree import ExplorationTree
from .ucb import select_parents

__all__ = ["propose_batch", "write_configs"]

TPE = "optuna-tpe"


def propose_batch(
    tree: ExplorationTree,
    space: Mapping[str, ParamSpec] | None = None,
    n_slots: int | None = None,
    c: float | None = None,
    form: str | None = None,
    seed: int | None = None,
    n_params: int | None = None,
    carry_best: bool | None = None,
    add: bool = True,
) -> list[Node]:
    """The pending nodes of the next batch (added to ``tree`` unless ``add=False``).

    Arguments left as None take the experiment's values (``parameter space``, ``n_slots``,
    ``ucb_c``, ``form``, ``seed``, ``n_params``, ``carry_best``).  Returns ``[]`` when the
    exploration is finished.  Raises ``ExplorationError`` when the current block has nodes but
    none finished yet (nothing to select a parent from).
    """
    exp = tree.experiment
    space = space_of(exp) if space is None else space
    n_slots = int(exp["n_slots"] if n_slots is None else n_slots)
    seed = int(exp["seed"] if seed is None else seed)
    n_params = int(exp["n_params"] if n_params is None else n_params)
    carry_best = bool(exp["carry_best"] if carry_best is None else carry_best)
    if n_slots < 1:
        raise ValueError(f"n_slots must be >= 1, got {n_slots}")
    if tree.finished:
        return []

    iteration = tree.next_iteration()
    block = tree.block_of(iteration)
    _, last = tree.block_bounds(block)
    k = min(n_slots, last - iteration + 1)
    batch = tree.next_batch()
    node_id = tree.next_node_id()
    existing = tree.block_nodes(block)
    avoid = [n.config for n in existing]
    new: list[Node] = []

    def make(slot: int, parent: Node | None, config: dict, mutation: list, **kw) -> Node:
        it = iteration + slot
        config = dict(config)
        if mutation:
            config["description"] = (
                f"exploration {tree.name}, node {node_id + slot}: {format_mutation(mutation)}"
            )
        cfg = validate(config, "train", source=f"{tree.path}: proposed node {node_id + slot}")
        node = tree.new_node(
            cfg,
            parent.node_id if parent is not None else None,
            mutation=mutation,
            batch=batch,
            slot=slot,
            iteration=it,
            node_id=node_id + slot,
            **kw,
        )
        avoid.append(node.config)
        new.append(node)
        return node

    form = exp["form"] if form is None else form
    if not existing:
        base = tree.blocks[block]["train"]
        note = f"base configuration of block {block}"
        best = tree.best(block - 1) if carry_best and block > 0 else None
        if best is not None:
            base = best.config
            note = f"best configuration of block {block - 1} (node {best.node_id})"
        root = make(0, None, dict(base), [], source="root", note=note)
        parents: list[Node] = [root] * (k - 1)
        first_slot = 1
    elif form == TPE:
        root = next((n for n in existing if n.source == "root"), existing[0])
        parents, first_slot = [root] * k, 0
    else:
        ids = select_parents(tree, k, c=c, form=form, block=block)
        parents = [tree[i] for i in ids]
        first_slot = 0

    if form == TPE and parents:
        drawn = tpe_configs(
            tree.directory,
            tree.name,
            block,
            existing,
            parents[0].config,
            space,
            len(parents),
            seed,
            int(exp.get("tpe_startup_trials", 4)),
        )
        for offset, (config, mutation, trial) in enumerate(drawn):
            node = make(first_slot + offset, parents[0], config, mutation, source="tpe")
            node.trial = trial
        parents = []

    tried: dict[int, set[str]] = {}  # parameters already mutated from each parent in this batch
    for offset, parent in enumerate(parents):
        slot = first_slot + offset
        rng = slot_rng(seed, iteration + slot, slot)
        used = tried.setdefault(id(parent), set())
        config, mutation = mutate(
            parent.config, space, rng, n_params=n_params, avoid=avoid, prefer_not=used
        )
        used.update(m["param"] for m in mutation)
        make(slot, parent, config, mutation, source="ucb")

    if add:
        for node in new:
            tree.add(node)
    return new


def write_configs(
    tree: ExplorationTree, nodes: Iterable[Node], directory: str | os.PathLike | None = None
) -> list[Path]:
    """Write each node's training configuration to ``<directory>/<cfg>.yaml`` (atomically).

    ``directory`` defaults to ``<exploration>/configs``; ``<cfg>`` is ``tree.cfg_name(node)``.
    The files hold the full configuration (train schema) with a comment naming the node.
    """
    directory = Path(tree.directory / EXPLORATION_CONFIGS if directory is None else directory)
    paths = []
    for node in nodes:
        path = directory / f"{tree.cfg_name(node)}.yaml"
        head = (
            f"# exploration {tree.name}, node {node.node_id} (iteration {node.iteration}, "
            f"block {node.block}, slot {node.slot}, parent "
            f"{node.parent if node.parent is not None else 'root'})\n"
        )
        if node.mutation:
            head += f"# mutation: {node.mutation_text}\n"
        text = yaml.safe_dump(plain(node.config), sort_keys=False, default_flow_style=False)
        with atomic_path(path) as tmp:
            tmp.write_text(head + text, encoding="utf-8")
        paths.append(path)
    return paths
