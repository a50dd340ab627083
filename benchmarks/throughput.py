"""Training throughput: the seeds' per-item torchvision pipeline vs this engine vs the matmul ceiling.

Workload (MNIST-shaped random data: N×1×28×28 uint8-range images, 10 classes): MLP 784-128-64-10,
batch 128, Adam lr 1e-3, 5 activations (relu, sigmoid, tanh, gelu, silu) × 3 seeds = 15 runs.
Throughput is in *model-samples per second*: training samples × runs / seconds.

(a)  the seeds' way: a torchvision-style Dataset keeping uint8 images whose ``__getitem__`` does
     uint8 → PIL.Image → ToTensor → Normalize, a DataLoader (batch 128, shuffle, num_workers=0), one
     nn.Sequential + torch.optim.Adam at a time; ``--steps`` steps per model, summed over the 15 models.
(a') the same loop fed from pre-normalised in-memory tensors (no PIL): how much of (a) is the data path.
(b)  ``empirical.train.train_group`` on the same data in memory, ``--epochs`` epochs over N per group:
     "cli": as ``python -m empirical.run`` runs it, 3 groups (one per seed) × 5 runs;
     "one": one program of 15 runs (5 activations × 3 inits under one seed: the same compute).
     Timed per epoch between train_group's progress callbacks; the first epoch (set-up, first probe)
     is dropped. An epoch's time holds the training loop, the mid-training probes (if on) and the
     previous epoch's bookkeeping and evaluation, made negligible here by a 128-image test set.
     Probes off (probe_every > steps) for the main figure, on (default probe_every) for the overhead:
     overhead = epoch time with probes / epoch time without − 1.
(c)  the matmul ceiling: the 8 matmuls of one training step (forward: 3 layers; backward: dW of every
     layer, dh of all but the first), batched over the runs as the engine does (baddbmm/bmm, the
     first layer's input expanded over runs). Bound = 128·R / (their time) = peak FLOP/s / FLOPs per
     model-sample, with FLOPs = 2·Σ in·out (forward) + 2·Σ in·out (dW) + 2·Σ_{l≥2} in·out (dh) = 454,400.

Evaluation is excluded from (a), (b) and (c). Every figure is a best over trials (per model in (a),
per epoch in (b), per batch of 20 steps in (c)); on a shared machine the best trial is the least
disturbed one. ``--clock cpu`` times process CPU time instead of wall time: with ``--threads 1`` it
is nearly immune to other processes (with more threads, spin-waiting inflates it).

    python benchmarks/throughput.py [--quick] [--n N] [--steps S] [--threads T] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from empirical.config import RunConfig  # noqa: E402
from empirical.train import train_group  # noqa: E402

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu")
SEEDS = (42, 451, 7)
INITS_ONE_PROGRAM = ("default", "he", "xavier")
WIDTHS = (128, 64)
DIMS = (784, *WIDTHS, 10)
BATCH = 128
LR = 1e-3
MEAN, STD = 0.1307, 0.3081
TORCH_ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}

clock = time.perf_counter


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_sample(dims=DIMS) -> int:
    """Training FLOPs of one sample in one model: forward, weight gradients, input gradients but the first."""
    pairs = list(zip(dims[:-1], dims[1:]))
    return 4 * sum(a * b for a, b in pairs) + 2 * sum(a * b for a, b in pairs[1:])


def make_data(n: int, n_test: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x8 = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    xt8 = torch.randint(0, 256, (n_test, 28, 28), dtype=torch.uint8, generator=g)
    yt = torch.randint(0, 10, (n_test,), generator=g)
    return x8, y, xt8, yt


# --------------------------------------------------------------------------- (a) the seeds' way

class SeedsMNIST(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's __getitem__: uint8 array -> PIL image (mode L) -> transform."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor, transform):
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data[i].numpy(), mode="L")
        return self.transform(img), int(self.targets[i])


class TensorItems(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def seeds_model(act: str) -> nn.Sequential:
    a = TORCH_ACT[act]
    return nn.Sequential(nn.Flatten(), nn.Linear(784, WIDTHS[0]), a(), nn.Linear(WIDTHS[0], WIDTHS[1]), a(),
                         nn.Linear(WIDTHS[1], 10))


def seeds_train(loader, act: str, seed: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds, seconds spent fetching batches) of ``steps`` Adam steps of one model."""
    torch.manual_seed(seed)
    model = seeds_model(act).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    sync(device)
    t0 = clock()
    data_time = 0.0
    it = iter(loader)
    for _ in range(steps):
        td = clock()
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        xb, yb = xb.to(device), yb.to(device)
        data_time += clock() - td
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return clock() - t0, data_time


def bench_seeds(dataset, steps: int, repeats: int, device: torch.device) -> dict:
    """15 models one after another; each model's time is its best over ``repeats`` trials, then summed."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0)
    seeds_train(loader, "relu", 0, min(steps, 5), device)  # warm-up
    best: dict = {}
    for _ in range(repeats):
        for seed in SEEDS:
            for act in ACTIVATIONS:
                t, d = seeds_train(loader, act, seed, steps, device)
                if (act, seed) not in best or t < best[act, seed][0]:
                    best[act, seed] = (t, d)
    total = sum(t for t, _ in best.values())
    samples = steps * BATCH * len(best)
    return {"seconds": total, "data_seconds": sum(d for _, d in best.values()), "steps_per_model": steps,
            "runs": len(best), "model_samples": samples, "samples_per_s": samples / total}


# --------------------------------------------------------------------------- (b) the engine

def engine_runs(layout: str, epochs: int, probe_every: int, n: int) -> list[list[RunConfig]]:
    common = dict(model="mlp", widths=WIDTHS, dataset="mnist", train_size=n, optimizer="adam", lr=LR,
                  batch_size=BATCH, epochs=epochs, probe_every=probe_every)
    if layout == "cli":
        return [[RunConfig(activation=a, seed=s, **common) for a in ACTIVATIONS] for s in SEEDS]
    return [[RunConfig(activation=a, seed=SEEDS[0], init=i, **common) for i in INITS_ONE_PROGRAM
             for a in ACTIVATIONS]]


def engine_trial(data, layout: str, epochs: int, probe_every: int, device: torch.device) -> list[dict]:
    """Per group: epoch times between progress callbacks (first epoch dropped) and the engine's own loop times."""
    out = []
    for runs in engine_runs(layout, epochs, probe_every, len(data.x_train)):
        stamps = []
        recs = train_group(runs, data, device, progress=lambda _: stamps.append(clock()), time_activations=False)
        out.append({"epochs": [b - a for a, b in zip(stamps, stamps[1:])],
                    "engine_loop": [e["epoch_time_s"] for e in recs[0].epochs[1:]]})
    return out


def summarise_engine(trials: list[list[dict]], layout: str, epochs: int, probe_every: int, n: int) -> dict:
    """Per group, the best epoch over all trials; summed over groups and scaled to ``epochs - 1`` epochs."""
    per_group = list(zip(*trials))
    best_epoch = sum(min(t for tr in g for t in tr["epochs"]) for g in per_group)
    best_loop = sum(min(t for tr in g for t in tr["engine_loop"]) for g in per_group)
    groups = engine_runs(layout, epochs, probe_every, n)
    runs = sum(len(g) for g in groups)
    samples = n * runs
    return {"seconds_per_epoch": best_epoch, "engine_loop_seconds_per_epoch": best_loop, "layout": layout,
            "groups": len(groups), "runs": runs, "steps_per_epoch": math.ceil(n / BATCH),
            "epochs_timed": len(trials) * (epochs - 1), "probe_every": probe_every,
            "model_samples_per_epoch": samples, "samples_per_s": samples / best_epoch,
            "engine_loop_samples_per_s": samples / best_loop}


# --------------------------------------------------------------------------- (c) the matmul ceiling

def bench_matmul(R: int, device: torch.device, batches: int, reps: int = 20) -> dict:
    g = torch.Generator().manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, generator=g).to(device)

    x = rnd(BATCH, DIMS[0])
    Ws = [rnd(R, a, b) for a, b in zip(DIMS[:-1], DIMS[1:])]
    bs = [rnd(R, b) for b in DIMS[1:]]
    dzs = [rnd(R, BATCH, b) for b in DIMS[1:]]
    hs = [x.reshape(1, BATCH, -1).expand(R, -1, -1)] + [rnd(R, BATCH, b) for b in DIMS[1:-1]]

    def step():
        for i in range(3):
            torch.baddbmm(bs[i].unsqueeze(1), hs[i], Ws[i])
        for i in range(3):
            torch.bmm(hs[i].transpose(1, 2), dzs[i])
        for i in (1, 2):
            torch.bmm(dzs[i], Ws[i].transpose(1, 2))

    for _ in range(10):
        step()
    best = math.inf
    for _ in range(batches):
        sync(device)
        t0 = clock()
        for _ in range(reps):
            step()
        sync(device)
        best = min(best, (clock() - t0) / reps)
    fps = flops_per_sample()
    return {"runs": R, "step_matmul_seconds": best, "flops_per_sample": fps,
            "flop_per_s": fps * BATCH * R / best, "samples_per_s": BATCH * R / best}


# --------------------------------------------------------------------------- main

def main(argv=None) -> dict:
    global clock
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60000, help="training images (default 60000, MNIST's size)")
    p.add_argument("--steps", type=int, default=100, help="(a): steps per model (default 100)")
    p.add_argument("--epochs", type=int, default=3,
                   help="(b): epochs per group; the first is not timed (default 3)")
    p.add_argument("--repeats", type=int, default=2, help="trials of each measurement (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or this process's CPU time (use with --threads 1 on a busy machine)")
    p.add_argument("--quick", action="store_true", help="smoke run in seconds: n=1024, steps=3, epochs=2, 1 repeat")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.steps, a.epochs, a.repeats = 1024, 3, 2, 1
    if a.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is not timed)")
    if a.threads:
        torch.set_num_threads(a.threads)
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(a.device)
    load0 = os.getloadavg()

    from torchvision import transforms

    x8, y, xt8, yt = make_data(a.n, BATCH)
    data = SimpleNamespace(x_train=((x8.float() / 255.0 - MEAN) / STD).unsqueeze(1), y_train=y,
                           x_test=((xt8.float() / 255.0 - MEAN) / STD).unsqueeze(1), y_test=yt,
                           num_classes=10, input_shape=(1, 28, 28))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    R = len(ACTIVATIONS) * len(SEEDS)
    never = math.ceil(a.n / BATCH) * a.epochs + 1
    probe_every = RunConfig().probe_every

    small = SimpleNamespace(**{**vars(data), "x_train": data.x_train[:4 * BATCH], "y_train": y[:4 * BATCH]})
    engine_trial(small, "one", 2, 10 ** 9, device)  # warm-up (first-call costs)

    res = {}
    res["a_seeds"] = bench_seeds(SeedsMNIST(x8, y, tf), a.steps, a.repeats, device)
    res["a_tensors"] = bench_seeds(TensorItems(data.x_train, y), a.steps, a.repeats, device)
    engine = {("one", never): "b_one", ("cli", never): "b_cli", ("one", probe_every): "b_one_probes",
              ("cli", probe_every): "b_cli_probes"}
    trials: dict = {k: [] for k in engine}
    for _ in range(a.repeats):  # interleaved, so that a disturbance hits all variants alike
        for layout, every in engine:
            trials[layout, every].append(engine_trial(data, layout, a.epochs, every, device))
    for (layout, every), key in engine.items():
        res[key] = summarise_engine(trials[layout, every], layout, a.epochs, every, a.n)
    batches = 5 if a.quick else 50
    res["c_matmul_15"] = bench_matmul(R, device, batches)
    res["c_matmul_5"] = bench_matmul(len(ACTIVATIONS), device, batches)

    base = res["a_seeds"]["samples_per_s"]
    ratios = {
        "b_one_over_a": res["b_one"]["samples_per_s"] / base,
        "b_cli_over_a": res["b_cli"]["samples_per_s"] / base,
        "b_one_over_c15": res["b_one"]["samples_per_s"] / res["c_matmul_15"]["samples_per_s"],
        "b_cli_over_c5": res["b_cli"]["samples_per_s"] / res["c_matmul_5"]["samples_per_s"],
        "probe_overhead_one": res["b_one"]["samples_per_s"] / res["b_one_probes"]["samples_per_s"] - 1,
        "probe_overhead_cli": res["b_cli"]["samples_per_s"] / res["b_cli_probes"]["samples_per_s"] - 1,
    }
    meta = {"n": a.n, "steps_a": a.steps, "epochs_b": a.epochs, "repeats": a.repeats, "clock": a.clock,
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "loadavg_start": load0,
            "loadavg_end": os.getloadavg(), "probe_every": probe_every, "probe_size": RunConfig().probe_size,
            "architecture": list(DIMS), "flops_per_sample": flops_per_sample(),
            "activations": list(ACTIVATIONS), "seeds": list(SEEDS), "batch": BATCH, "lr": LR}
    out = {"meta": meta, "results": res, "ratios": ratios}
    report(out)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


def report(out: dict) -> None:
    m, r, q = out["meta"], out["results"], out["ratios"]
    print(f"MNIST-shaped random data, N={m['n']:,}, MLP {'-'.join(map(str, m['architecture']))}, batch {BATCH}, "
          f"Adam {LR:g}; {len(ACTIVATIONS)} activations x {len(SEEDS)} seeds = 15 runs")
    print(f"device {m['device']} ({m['machine']}, {m['cpu_count']} CPUs), {m['threads']} torch threads, "
          f"torch {m['torch']}, {m['clock']} clock; load average {m['loadavg_start'][0]:.2f} -> "
          f"{m['loadavg_end'][0]:.2f}")
    print(f"training FLOPs per model-sample {m['flops_per_sample']:,}; evaluation excluded; best of "
          f"{m['repeats']} trial(s) per model (a) / {r['b_one']['epochs_timed']} epochs per group (b)\n")

    def eng(d):
        return (f"{d['groups']} x {d['steps_per_epoch']} steps/epoch; engine's own loop time (wall): "
                f"{d['engine_loop_samples_per_s']:,.0f}/s")

    rows = [
        ("(a)  seeds: PIL/ToTensor/Normalize loader, 1 model at a time", r["a_seeds"]["samples_per_s"],
         f"{m['steps_a']} steps/model, {r['a_seeds']['data_seconds'] / r['a_seeds']['seconds']:.0%} in the loader"),
        ("(a') same loop, pre-normalised tensors (no PIL)", r["a_tensors"]["samples_per_s"],
         f"{m['steps_a']} steps/model, {r['a_tensors']['data_seconds'] / r['a_tensors']['seconds']:.0%} "
         f"in the loader"),
        ("(b)  engine, one program of 15 runs, probes off", r["b_one"]["samples_per_s"], eng(r["b_one"])),
        ("(b)  engine as the CLI runs it, 3 groups x 5, probes off", r["b_cli"]["samples_per_s"], eng(r["b_cli"])),
        (f"(b+) engine, one program of 15, probes every {m['probe_every']}", r["b_one_probes"]["samples_per_s"],
         eng(r["b_one_probes"])),
        (f"(b+) engine, 3 groups x 5, probes every {m['probe_every']}", r["b_cli_probes"]["samples_per_s"],
         eng(r["b_cli_probes"])),
        ("(c)  matmul ceiling, 15 runs batched (bmm)", r["c_matmul_15"]["samples_per_s"],
         f"{r['c_matmul_15']['flop_per_s'] / 1e9:.1f} GFLOP/s, {r['c_matmul_15']['step_matmul_seconds'] * 1e3:.2f} "
         f"ms/step"),
        ("(c)  matmul ceiling, 5 runs batched (bmm)", r["c_matmul_5"]["samples_per_s"],
         f"{r['c_matmul_5']['flop_per_s'] / 1e9:.1f} GFLOP/s, {r['c_matmul_5']['step_matmul_seconds'] * 1e3:.2f} "
         f"ms/step"),
    ]
    print(f"{'':60s} {'model-samples/s':>15s}  notes")
    for name, v, note in rows:
        print(f"{name:60s} {v:>15,.0f}  {note}")
    print()
    print(f"(b)/(a)  speed-up over the seeds' way  : one program {q['b_one_over_a']:6.1f}x, "
          f"CLI {q['b_cli_over_a']:6.1f}x    [target >= 20x]")
    print(f"(b)/(c)  fraction of the matmul bound  : one program {q['b_one_over_c15']:6.1%}, "
          f"CLI {q['b_cli_over_c5']:6.1%} (of the 5-run bound)    [target >= 65%]")
    print(f"probe overhead, probe_every={m['probe_every']:<3d}      : one program {q['probe_overhead_one']:6.1%}, "
          f"CLI {q['probe_overhead_cli']:6.1%}    [target <= 10%]")


if __name__ == "__main__":
    main()
