"""Training throughput: factorised SignalGNN vs explicit per-edge message passing.

Times the real training step of ``connectome_gnn.train.trainer`` (learning-rate schedule, forward,
data loss + regularisers, backward, Adam step with the W / embedding / MLP parameter groups, and
the per-iteration loss read-back the trainer does for its divergence check) for two models that
compute the same function:

- ``factorised``: :class:`SignalGNN` (lin_edge once per neuron, then a dense matmul with W);
- ``edgewise``:  :class:`SignalGNNEdgewise` (torch_geometric MessagePassing over all N(N-1) edges
  of every frame of the batch, one lin_edge evaluation per edge, as the reference code does).

Both get the same random activity (u ~ 5 randn, targets ~ randn), the same initial parameters and
the same batches, on the same device in the same process.  After warm-up iterations each variant
runs for a fixed wall-clock budget (and at least ``--min-iterations`` iterations).  One JSON object
is printed to stdout; progress goes to stderr.

    .venv/bin/python bench/train_throughput.py                       # N = 1000, batch 8, 30 s each
    .venv/bin/python bench/train_throughput.py --n-neurons 100 --seconds 3   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from connectome_gnn.config import load_train_config
from connectome_gnn.models.signal import SignalGNN, SignalGNNEdgewise
from connectome_gnn.train.regularizers import regularization
from connectome_gnn.train.trainer import _data_loss, _make_optimizer, _set_lr, resolve_device

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN_CONFIG = ROOT / "config" / "train" / "default.yaml"

# The reference code (NeuralGraph, per-edge message passing) trains the N = 1000 signal model with
# batch 8 at about 0.8 frames/s on 2 CPU cores.
REFERENCE_FRAMES_PER_S_2CPU = 0.8


def log(msg: str) -> None:
    print(f"[train_throughput] {msg}", file=sys.stderr, flush=True)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


def make_data(n_neurons: int, n_frames: int, seed: int, dev: torch.device):
    gen = torch.Generator().manual_seed(seed)
    u = 5.0 * torch.randn(n_frames, n_neurons, generator=gen)
    du = torch.randn(n_frames, n_neurons, generator=gen)
    return u.to(dev), du.to(dev)


def build(variant: str, n_neurons: int, cfg: dict, seed: int, dev: torch.device):
    """(module called in the step, SignalGNN holding the parameters, optimizer)."""
    base = SignalGNN.from_config(n_neurons, cfg=cfg, generator=torch.Generator().manual_seed(seed))
    model = base if variant == "factorised" else SignalGNNEdgewise(base)
    model = model.to(dev)
    base = model if variant == "factorised" else model.base
    # _make_optimizer groups by parameter name: W / base.W -> lr_W, a / base.a -> lr_emb, rest -> lr
    return model, base, _make_optimizer(model, cfg)


def check_equivalence(n_neurons: int, cfg: dict, u: torch.Tensor, seed: int) -> dict:
    """Max |factorised - edgewise| of the forward on one frame, with a random (non-zero) W."""
    gen = torch.Generator().manual_seed(seed + 1)
    m = SignalGNN.from_config(n_neurons, cfg={**cfg, "W_init_std": 1.0}, generator=gen).to(u.device)
    with torch.no_grad():
        a = m(u[:1])
        b = SignalGNNEdgewise(m).to(u.device)(u[:1])
    diff = float((a - b).abs().max())
    return {"check_max_abs_diff": diff, "check_max_abs_value": float(a.abs().max())}


def time_variant(
    variant: str,
    args,
    cfg: dict,
    u: torch.Tensor,
    du: torch.Tensor,
    dev: torch.device,
) -> dict:
    model, base, optimizer = build(variant, args.n_neurons, cfg, args.seed, dev)
    model.train()
    gen = torch.Generator().manual_seed(args.seed + 2)  # same batches for both variants
    xnorm = float(1.5 * u.std())
    batch = args.batch_size
    warmup = args.warmup if variant == "factorised" else args.edgewise_warmup
    horizon = 10_000  # nominal run length for the cosine schedule (speed does not depend on it)

    def step(i: int) -> float:
        _set_lr(optimizer, cfg, (i % horizon) / horizon)
        k = torch.randint(u.shape[0], (batch,), generator=gen).to(dev)
        ub = u[k]
        pred = model(ub)
        data_loss = _data_loss(pred, du[k], cfg["loss"])
        terms = regularization(base, ub, cfg, xnorm)
        loss = data_loss + sum(terms.values()) if terms else data_loss
        value = float(loss.detach())  # the trainer reads the loss back every iteration
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_w = time.perf_counter()
    for i in range(warmup):
        step(i)
    sync(dev)
    warm_s = time.perf_counter() - t_w
    log(f"{variant}: {warmup} warm-up iterations in {warm_s:.2f} s")

    n = 0
    last = float("nan")
    t0 = time.perf_counter()
    while True:
        last = step(warmup + n)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= args.seconds and n >= args.min_iterations:
            break
        if variant == "edgewise" and n == 1:
            log(f"edgewise: first timed iteration took {elapsed:.2f} s")
    sync(dev)
    elapsed = time.perf_counter() - t0
    out = {
        f"{variant}_frames_per_s": n * batch / elapsed,
        f"{variant}_iterations": n,
        f"{variant}_seconds": elapsed,
        f"{variant}_s_per_iteration": elapsed / n,
        f"{variant}_warmup_iterations": warmup,
        f"{variant}_warmup_seconds": warm_s,
        f"{variant}_final_loss": last,
    }
    if dev.type == "cuda":
        out[f"{variant}_peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    log(f"{variant}: {n} iterations in {elapsed:.2f} s -> {n * batch / elapsed:.3f} frames/s")
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n-neurons", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0, help="timed wall budget per variant")
    p.add_argument("--min-iterations", type=int, default=2, help="timed iterations at least")
    p.add_argument("--warmup", type=int, default=5, help="warm-up iterations (factorised)")
    p.add_argument("--edgewise-warmup", type=int, default=1, help="warm-up iterations (edgewise)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--train-config", type=Path, default=DEFAULT_TRAIN_CONFIG)
    p.add_argument("--n-data-frames", type=int, default=256, help="random frames to sample from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-edgewise", action="store_true", help="time the factorised model only")
    p.add_argument("--no-check", action="store_true", help="skip the forward equivalence check")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    cfg = load_train_config(args.train_config)
    cfg["batch_size"] = args.batch_size
    torch.manual_seed(args.seed)
    u, du = make_data(args.n_neurons, args.n_data_frames, args.seed, dev)

    result: dict = {
        "benchmark": "train_throughput",
        "n_neurons": args.n_neurons,
        "batch_size": args.batch_size,
        "device": str(dev),
        "device_name": device_name(dev),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "train_config": str(args.train_config),
        "loss": cfg["loss"],
        "seconds_budget": args.seconds,
        "edges_per_batch": args.n_neurons * (args.n_neurons - 1) * args.batch_size,
        "reference_frames_per_s_2cpu": REFERENCE_FRAMES_PER_S_2CPU,
        "reference_setting": "reference code, N=1000, batch 8, 2 CPU cores",
    }
    try:
        import torch_geometric

        result["torch_geometric"] = torch_geometric.__version__
    except ImportError:  # pragma: no cover - a dependency of the package
        result["torch_geometric"] = None

    if not args.no_check and not args.no_edgewise:
        result.update(check_equivalence(args.n_neurons, cfg, u, args.seed))
        log(f"forward check: max |factorised - edgewise| = {result['check_max_abs_diff']:.3g}")

    result.update(time_variant("factorised", args, cfg, u, du, dev))
    if not args.no_edgewise:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        result.update(time_variant("edgewise", args, cfg, u, du, dev))
        result["speedup"] = result["factorised_frames_per_s"] / result["edgewise_frames_per_s"]
    else:
        result["edgewise_frames_per_s"] = None
        result["speedup"] = None
    # the reference figure is for N = 1000, batch 8 on 2 CPU cores; other settings get null
    same_setting = args.n_neurons == 1000 and args.batch_size == 8
    result["speedup_vs_reference_2cpu"] = (
        result["factorised_frames_per_s"] / REFERENCE_FRAMES_PER_S_2CPU if same_setting else None
    )
    # ru_maxrss is in KiB on Linux; it is the peak of the whole process (edgewise dominates)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # other processes on the machine distort the timings badly (see bench/README.md)
    result["load_average_end"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
