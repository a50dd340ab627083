"""The training engine: one program of runs (same data, model shape and hyper-parameters; different
activations, initialisations and seeds) trained as one batched program.

Each run draws its batches from its own seed's permutation, so runs of one seed see the same batches in the
same order and every run's batches are those it would see alone. The optimiser acts on stacked parameters;
Adam and SGD are elementwise, so each run is updated exactly as if it were alone. A run whose loss becomes
NaN or Inf is marked diverged at that step; the others go on.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from empirical import probes, sharpness
from empirical.config import ConfigError, RunConfig
from empirical.models import (Arch, StackedModel, conv_strategy, init_params, init_sigmas, layer_sigmas,
                              torch_activation)
from theory import activations as registry


@dataclass
class RunRecords:
    """Everything measured for one run: a summary row and tidy record lists."""

    config: RunConfig
    row: dict
    epochs: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; allowed here: cpu, auto")
    return torch.device(name)


def _order(runs: Sequence[RunConfig]) -> tuple[list[RunConfig], list[str], list[tuple[int, int]]]:
    acts = list(dict.fromkeys(r.activation for r in runs))
    ordered = sorted(runs, key=lambda r: acts.index(r.activation))
    slices, start = [], 0
    for a in acts:
        n = sum(1 for r in ordered if r.activation == a)
        slices.append((start, start + n))
        start += n
    return ordered, acts, slices


def time_activation(fn: Callable, shapes: Sequence[tuple[int, ...]], device, reps: int = 20) -> float:
    """Median seconds of forward+backward of ``fn`` over tensors of ``shapes`` (one model's hidden layers)."""
    xs = [torch.randn(s, device=device, requires_grad=True) for s in shapes]
    gs = [torch.ones(s, device=device) for s in shapes]
    times = []
    for i in range(reps + 3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for xx, gg in zip(xs, gs):
            fn(xx).backward(gg)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def make_optimizer(params: Sequence[torch.Tensor], cfg: RunConfig) -> torch.optim.Optimizer:
    """Adam or SGD on the stacked parameters; both are elementwise, so each run's update is its update alone.

    Adam uses torch's fused kernel (one pass over parameters and moments instead of about seven)
    where this torch has one for the device, else the foreach kernels; the two agree to ~1 ulp per step.
    """
    if cfg.optimizer == "adam":
        try:
            return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        except (RuntimeError, ValueError, TypeError):
            return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, foreach=True)


def train_group(runs: Sequence[RunConfig], data, device: torch.device | str = "cpu",
                progress: Callable[[int], None] | None = None, time_activations: bool = True,
                native: bool = True, conv: str = "auto", layer_quantiles: bool = True,
                compile_step: bool | str | Callable = False) -> list[RunRecords]:
    """Train ``runs`` (one group) together on ``data`` (an ``empirical.data.Dataset``).

    ``layer_quantiles``: the first and the last probe also record the per-layer quantiles of h_l and
    |∂L/∂W_l| (``probes.DIST_METRICS``).

    ``conv`` picks TinyVGG's convolution strategy (``empirical.models.conv_strategy``); results do not depend on it.

    ``compile_step``: the training step's forward pass and loss under ``torch.compile`` (``CompiledLoss``; True
    for the inductor backend, or a backend's name or function). Off by default: on the 2-core CPU measured it
    gained 0-28 % after 5-50 s of compiling (``benchmarks/README.md``), and fused kernels round differently
    from the eager ops, so its results equal the eager ones to float rounding, not bit for bit.
    """
    device = torch.device(device)
    first = runs[0]
    keys = {r.program_key for r in runs}
    if len(keys) != 1:
        raise ValueError("train_group needs runs of one program (same data, model, hyper-parameters)")
    ordered, acts, slices = _order(runs)
    R = len(ordered)
    act_objs = [registry.lookup(a) for a in acts]
    fns = [torch_activation(a, native=native) for a in act_objs]
    arch = Arch(first.model, tuple(data.input_shape), data.num_classes, tuple(first.widths), first.channels)
    model = StackedModel(arch, fns, slices, conv_strategy(device, conv))

    x_train = data.x_train.to(device)
    y_train = data.y_train.to(device)
    x_test = data.x_test.to(device)
    y_test = data.y_test.to(device)

    params = init_params(arch, [(r.activation, r.init, r.seed, r.sigma_b2, r.sigma_w2) for r in ordered], device=device)
    opt = make_optimizer(params, first)

    seeds = list(dict.fromkeys(r.seed for r in ordered))
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    run_seed = torch.tensor([seeds.index(r.seed) for r in ordered], device=device)
    n = len(x_train)
    probe_idx = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))[:first.probe_size]
                             for seed in seeds]).to(device)
    x_probe, y_probe = _rows(x_train, y_train, probe_idx, run_seed)
    eager = functools.partial(_loss_of, model)
    compiled = (CompiledLoss(eager, "inductor" if compile_step is True else compile_step) if compile_step
                else None)

    # TinyVGG one run at a time on a CPU: each run's forward, loss and backward before the next run's forward
    # (``StackedModel.backward_by_block``), so that one run's feature maps are held instead of all R runs'
    by_block = model.arch.model == "tinyvgg" and model.conv == "loop" and compiled is None

    def train_step(loss_of, xb, yb):
        opt.zero_grad(set_to_none=True)
        if by_block:
            logits, loss_r = model.backward_by_block(params, xb, yb)
        else:
            logits, loss_r = loss_of(params, xb, yb)
            loss_r.sum().backward()
        opt.step()
        return logits, loss_r
    steps_per_epoch = math.ceil(n / first.batch_size)
    total_steps = steps_per_epoch * first.epochs

    records = [RunRecords(r, {}) for r in ordered]
    diverged_at = [None] * R
    layer_rows: list[tuple[int, int, dict]] = []

    def do_probe(step: int, epoch: int, distributions: bool = False) -> None:
        with subnormals_kept():
            res = probes.probe(model, params, x_probe, y_probe, first.eps, distributions=distributions)
        layer_rows.append((step, epoch, {m: {l: v.detach().cpu().tolist() for l, v in d.items()}
                                         for m, d in res.items()}))

    def do_sharpness(step: int, epoch: int) -> None:
        with subnormals_kept():
            res = sharpness.measure(model, params, x_probe, y_probe, opt, iters=first.sharpness_iters,
                                    seed=first.seed)
        layer_rows.append((step, epoch, {m: {0: v.tolist()} for m, v in res.items()}))

    do_probe(0, 0, distributions=layer_quantiles)
    if first.sharpness_every:
        do_sharpness(0, 0)
    step = 0
    group_train_time = 0.0
    for epoch in range(1, first.epochs + 1):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        losses = torch.empty(steps_per_epoch, R, device=device)
        correct = torch.zeros(R, device=device)
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            xb, yb = _rows(x_train, y_train, perms[:, s * first.batch_size:(s + 1) * first.batch_size], run_seed)
            with subnormals_flushed(device):
                logits, loss_r = (compiled.step(lambda f: train_step(f, xb, yb)) if compiled
                                  else train_step(eager, xb, yb))
            with torch.no_grad():
                losses[s] = loss_r.detach()
                correct += (logits.argmax(-1) == yb).sum(-1)
            step += 1
            if step % first.probe_every == 0 and step != total_steps:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                pt = time.perf_counter()
                do_probe(step, epoch)
                t0 += time.perf_counter() - pt
            if first.sharpness_every and step % first.sharpness_every == 0 and step != total_steps:
                pt = time.perf_counter()
                do_sharpness(step, epoch)
                t0 += time.perf_counter() - pt
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_time = time.perf_counter() - t0
        group_train_time += epoch_time
        if progress:
            progress(steps_per_epoch)

        loss_cpu = losses.cpu()
        test_loss, test_acc = evaluate(model, params, x_test, y_test)
        train_acc = (correct / n).cpu().tolist()
        for r in range(R):
            col = loss_cpu[:, r]
            if diverged_at[r] is None:
                bad = (~torch.isfinite(col)).nonzero()
                if len(bad):
                    diverged_at[r] = (epoch - 1) * steps_per_epoch + int(bad[0]) + 1
            rec = records[r]
            for s in range(steps_per_epoch):
                rec.steps.append({"step": (epoch - 1) * steps_per_epoch + s + 1, "epoch": epoch,
                                  "loss": _num(float(col[s]))})
            rec.epochs.append({
                "epoch": epoch, "train_loss": _num(float(col.mean())), "train_acc": _num(train_acc[r]),
                "test_loss": _num(test_loss[r]), "test_acc": _num(test_acc[r]),
                "epoch_time_s": round(epoch_time, 6),
            })
        if all(d is not None for d in diverged_at):
            break
    do_probe(step, epoch, distributions=layer_quantiles)
    if first.sharpness_every:
        do_sharpness(step, epoch)

    act_times = {}
    if time_activations:
        shapes = _hidden_shapes(arch, first.batch_size)
        for a, fn in zip(acts, fns):
            act_times[a] = time_activation(fn, shapes, device) * steps_per_epoch

    for r, rec in enumerate(records):
        _finish(rec, r, diverged_at[r], layer_rows, group_train_time, act_times.get(rec.config.activation),
                R, arch, step)
    return records


def _loss_of(model: StackedModel, params, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [R, B, C] and each run's mean cross-entropy [R]."""
    logits, _ = model.forward(params, x)
    return logits, model.per_run_loss(logits, y)


class CompiledLoss:
    """The eager loss function (``_loss_of`` of a model) under ``torch.compile``, falling back to it for good, with
    one warning, if compiling or running the compiled forward or backward raises (no C++ compiler, an unsupported
    op).

    ``step(body)`` runs ``body(loss_fn)`` (forward, backward, optimiser step) with the compiled function, and
    on a failure runs it again with the eager one: the failure came before ``opt.step()``, so no parameter
    has moved, and ``body`` starts by clearing the gradients.
    """

    def __init__(self, eager: Callable, backend: str | Callable = "inductor"):
        self.eager = eager
        # one compiled program per group: without the reset, the groups of a study trained in one process
        # pile up guards on the one code object until dynamo's recompile limit silently turns compiling off
        torch._dynamo.reset()
        # static shapes: a new batch size (an epoch's last batch) compiles once more; inductor's dynamic-shape
        # recompilation failed on TinyVGG here ("cannot determine truth value of Relational")
        self.fn = torch.compile(self.eager, backend=backend, dynamic=False)
        self.failed: str | None = None

    def step(self, body: Callable):
        if self.failed is None:
            try:
                return body(self.fn)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: train eagerly
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                self.failed = f"{type(e).__name__}: {first}"[:300]
                warnings.warn(f"torch.compile failed ({self.failed}); training eagerly", RuntimeWarning,
                              stacklevel=2)
        return body(self.eager)


def _flushing() -> bool:
    return torch.tensor([1e-320], dtype=torch.float64).mul(1.0).item() == 0.0


@contextlib.contextmanager
def _subnormals(flush: bool):
    before = _flushing()
    if before != flush:
        torch.set_flush_denormal(flush)
    try:
        yield
    finally:
        if before != flush:
            torch.set_flush_denormal(before)


def subnormals_flushed(device: torch.device):
    """The training step on CPU with subnormal floats (|v| < 1.2e-38 in float32) read and written as 0.

    A deep net at a small-variance init decays its signals and gradients into subnormals, where the
    CPU's arithmetic is up to ~100x slower (the deep benchmark's step: 0.74 s -> 0.23 s on one thread).
    A subnormal gradient moves no float32 weight of the magnitudes trained here (Adam divides it by
    √v + ε with ε = 1e-8; SGD multiplies it by lr): ``--reproduce results/depth-sweep`` (30-layer nets at
    default init, trained without flushing) is bit-identical. The probes and the sharpness keep subnormals
    (``subnormals_kept``), so every measured value keeps its full range.
    """
    return _subnormals(True) if device.type == "cpu" else contextlib.nullcontext()


def subnormals_kept():
    return _subnormals(False)


def _rows(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, run_seed: torch.Tensor):
    """The examples ``idx`` [S, b] of each seed: [b, ...] shared when there is one seed, else [R, b, ...] per run."""
    if len(idx) == 1:
        return x[idx[0]], y[idx[0]]
    # each seed's rows gathered once, then copied per run as whole [b, ...] blocks: for 15 runs of 3 seeds and
    # 128 MNIST images, 1.0 ms per step instead of 1.3 ms for gathering all R·b rows
    return x[idx].index_select(0, run_seed), y[idx].index_select(0, run_seed)


def _num(v: float):
    return v if math.isfinite(v) else None


def _hidden_shapes(arch: Arch, batch: int) -> list[tuple[int, ...]]:
    if arch.model == "mlp":
        return [(batch, w) for w in arch.widths]
    c, h, w = arch.input_shape
    k = arch.channels
    return [(batch, k, h, w)] * 2 + [(batch, k, h // 2, w // 2)] * 2


@torch.no_grad()
def evaluate(model: StackedModel, params, x, y, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-run mean cross-entropy and accuracy on (x, y)."""
    R = model.R
    loss_sum = torch.zeros(R, device=x.device, dtype=torch.float64)
    correct = torch.zeros(R, device=x.device, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        logits, _ = model.forward(params, x[i:i + chunk])
        yb = y[i:i + chunk]
        loss_sum += model.per_run_loss(logits, yb).double() * len(yb)
        correct += (logits.argmax(-1) == yb).sum(-1).double()
    return (loss_sum / len(x)).cpu().tolist(), (correct / len(x)).cpu().tolist()


def _finish(rec: RunRecords, r: int, diverged_step, layer_rows, group_time, act_time, R, arch, last_step):
    cfg = rec.config
    for step, epoch, res in layer_rows:
        for metric, by_layer in res.items():
            for layer, values in by_layer.items():
                if diverged_step is not None and step >= diverged_step:
                    continue
                rec.layers.append({"step": step, "epoch": epoch, "layer": layer, "metric": metric,
                                   "value": _num(float(values[r]))})
    for layer, (w2, b2) in enumerate(layer_sigmas(arch, cfg.init, cfg.activation, cfg.sigma_b2, cfg.sigma_w2), 1):
        rec.layers += [{"step": 0, "epoch": 0, "layer": layer, "metric": "sigma_w2", "value": w2},
                       {"step": 0, "epoch": 0, "layer": layer, "metric": "sigma_b2", "value": b2}]
    first_grad = [row["value"] for row in rec.layers if row["metric"] == "mean_abs_grad" and row["layer"] == 1]
    epochs = rec.epochs
    reach = next((e["epoch"] for e in epochs if (e["test_acc"] or 0) >= 0.9), None)
    last = epochs[-1] if epochs else {}
    _, fan_in, fan_out = arch.layers[1] if len(arch.layers) > 2 else arch.layers[0]
    sw2, sb2 = init_sigmas(cfg.init, cfg.activation, fan_in, fan_out, cfg.sigma_b2, cfg.sigma_w2)
    status = "diverged" if diverged_step is not None else "finished"
    rec.row = {
        "run_id": cfg.run_id, "activation": cfg.activation, "seed": cfg.seed, "init": cfg.init,
        "sigma_w2": round(sw2, 10), "sigma_b2": round(sb2, 10), "model": cfg.model,
        "widths": "-".join(map(str, cfg.widths)), "depth": cfg.depth, "channels": cfg.channels,
        "dataset": cfg.dataset, "train_size": cfg.train_size, "subset_seed": cfg.subset_seed,
        "normalize": cfg.normalize, "adam_eps": cfg.adam_eps, "optimizer": cfg.optimizer, "lr": cfg.lr,
        "momentum": cfg.momentum, "batch_size": cfg.batch_size, "epochs": cfg.epochs, "eps": cfg.eps,
        "status": status, "diverged_step": diverged_step, "steps": last_step,
        "final_train_loss": last.get("train_loss"), "final_test_loss": last.get("test_loss"),
        "final_test_acc": last.get("test_acc"),
        "best_test_acc": max((e["test_acc"] for e in epochs if e["test_acc"] is not None), default=None),
        "epochs_to_90": reach,
        "first_layer_grad_init": first_grad[0] if first_grad else None,
        "first_layer_grad_final": first_grad[-1] if first_grad and status == "finished" else None,
        "group_runs": R,
        "group_time_per_epoch_s": round(group_time / max(len(epochs), 1), 6),
        "time_per_epoch_s": round(group_time / max(len(epochs), 1) / R, 6),
        "act_time_per_epoch_s": round(act_time, 6) if act_time is not None else None,
    }
