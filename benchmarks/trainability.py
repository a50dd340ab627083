"""Throughput of the trainability sweep: one batched program per (depth, seed) vs the same runs one at a time.

Workload: one depth slice of ``--preset trainability`` (MNIST-1D, MLP of ``--depth`` hidden layers × 64 units,
tanh/elu/selu/relu × 15 σ_w² at σ_b² = 0.05 = 60 runs, batch 32; SGD at lr 1e-6 so that no run diverges and
stops early: the cost of a step does not depend on the learning rate), ``--steps`` training steps
per epoch over a stratified subset of 32·steps examples, 2 epochs; the second epoch is timed between
``train_group``'s progress callbacks (set-up and the first probe excluded; the first epoch's evaluation, on a
32-example test set, about one step, included).

(a) the 60 runs one model at a time (``train_group([run])``, R = 1), summed;
(b) the 60 runs as one program (R = 60), as ``python -m empirical.run --preset trainability`` trains them;
(c) the matmul ceiling at these shapes: the 3·L + 1 batched matmuls of one training step (forward, dW, dh;
    baddbmm/bmm over R = 60), timed alone; bound = 32·60 / (their time) model-samples/s.

Throughput in model-samples/s = 32 · runs · steps / seconds. ``--clock cpu`` times process CPU time (with
``--threads 1`` nearly immune to other processes on a shared machine); every figure is the best of ``--repeats``.

    python benchmarks/trainability.py [--depth 24] [--steps 20] [--threads 1] [--clock cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from empirical import config as C  # noqa: E402
from empirical.data import DataSpec, load  # noqa: E402
from empirical.study import plan  # noqa: E402
from empirical.train import train_group  # noqa: E402

WIDTH, BATCH = 64, 32


def runs_of(depth: int, steps: int) -> list[C.RunConfig]:
    cfg = C.validate(dataclasses.replace(C.preset("trainability"), depths=(depth,), seeds=(1,), epochs=2, lr=1e-6,
                                         train_size=BATCH * steps))
    _, (task,) = plan(cfg)
    return list(task.runs)


def engine_seconds(runs, data, clock) -> float:
    """Seconds of the second epoch (between train_group's progress callbacks; set-up and the first probe excluded)."""
    marks = []
    train_group(runs, data, time_activations=False, progress=lambda _: marks.append(clock()))
    return marks[1] - marks[0]


def matmul_seconds(R: int, depth: int, steps: int, clock, reps: int = 3) -> float:
    """Best time of ``steps`` repetitions of one step's matmuls."""
    g = torch.Generator().manual_seed(0)
    dims = [40] + [WIDTH] * depth + [10]
    W = [torch.randn(R, a, b, generator=g) for a, b in zip(dims[:-1], dims[1:])]
    b = [torch.randn(R, 1, d, generator=g) for d in dims[1:]]
    x = torch.randn(1, BATCH, 40, generator=g).expand(R, -1, -1)
    hs = [x] + [torch.randn(R, BATCH, d, generator=g) for d in dims[1:-1]]
    gz = [torch.randn(R, BATCH, d, generator=g) for d in dims[1:]]

    def step():
        for i, w in enumerate(W):
            torch.baddbmm(b[i], hs[i], w)
            torch.bmm(hs[i].transpose(1, 2), gz[i])
            if i:
                torch.bmm(gz[i], w.transpose(1, 2))

    step()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        for _ in range(steps):
            step()
        best = min(best, clock() - t0)
    return best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=24)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    p.add_argument("--json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    runs = runs_of(a.depth, a.steps)
    data = load(DataSpec("mnist1d", train_size=BATCH * a.steps, seed=1))
    data = dataclasses.replace(data, x_test=data.x_test[:BATCH], y_test=data.y_test[:BATCH])  # evaluation ~ 1 step
    steps = -(-len(data.x_train) // BATCH)
    R = len(runs)
    batched = min(engine_seconds(runs, data, clock) for _ in range(a.repeats))
    alone = sum(min(engine_seconds([r], data, clock) for _ in range(a.repeats)) for r in runs)
    mm = matmul_seconds(R, a.depth, steps, clock)
    samples = BATCH * R * steps
    out = {
        "workload": f"MNIST-1D, MLP {a.depth} x {WIDTH}, {R} runs (4 activations x 15 sigma_w2), batch {BATCH}, "
                    f"{steps} SGD steps", "threads": a.threads, "clock": a.clock,
        "one_at_a_time": {"seconds": alone, "samples_per_s": samples / alone},
        "batched": {"seconds": batched, "samples_per_s": samples / batched},
        "matmul_ceiling": {"seconds": mm, "samples_per_s": samples / mm},
        "speedup_batched_vs_one_at_a_time": alone / batched,
        "batched_share_of_ceiling": mm / batched,
    }
    print(f"{out['workload']}; {a.threads} thread(s), {a.clock} clock, best of {a.repeats}")
    for k in ("one_at_a_time", "batched", "matmul_ceiling"):
        print(f"  {k:15s} {out[k]['seconds']:8.2f} s  {out[k]['samples_per_s']:12,.0f} model-samples/s")
    print(f"  batched / one at a time: {out['speedup_batched_vs_one_at_a_time']:.1f}x;  "
          f"batched reaches {100 * out['batched_share_of_ceiling']:.0f} % of the matmul ceiling")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
