"""Training throughput of every model family: the seeds' loop, plain PyTorch, torch.func, this engine, the ceiling.

Families (random data of the real shapes, 10 classes, batch 128, Adam lr 1e-3):
  mlp    MLP 784-128-64-10 on 1x28x28 (MNIST shape)
  deep   deep narrow MLP 784-(128 x 50)-10 on 1x28x28 (the trainability study's depth 50, width 128)
  vgg28  TinyVGG, 8 channels, on 1x28x28 (MNIST shape)
  vgg32  TinyVGG, 16 channels, on 3x32x32 (CIFAR-10 shape)
Runs: 5 activations (relu, sigmoid, tanh, gelu, silu) x 3 seeds = R = 15. Throughput is in
*model-samples per second*: training samples x runs / seconds, training steps only (no evaluation).

(a)  the seeds' way: a torchvision-style Dataset of uint8 images whose ``__getitem__`` does uint8 -> PIL.Image
     -> ToTensor -> Normalize, DataLoader(batch 128, shuffle, num_workers=0), one nn.Sequential +
     torch.optim.Adam at a time, summed over the 15 models.
(a') a plain PyTorch loop on pre-normalised in-memory tensors (batches sliced from a permutation), one
     nn.Sequential + Adam at a time, summed over the 15 models.
(v)  the ecosystem's way to train many small models: torch.func.stack_module_state + functional_call +
     vmap, one vmapped ensemble per activation (vmap needs one function), one Adam over the stacked parameters.
(a'), (v) with subnormals flushed: the same with ``torch.set_flush_denormal(True)``, which the engine sets for
     its training step on CPU (a deep net at default init decays its gradients into float32 subnormals, where
     the CPU is many times slower): the engine's ratio to these is what batching alone buys.
(b)  ``empirical.train.train_group`` as the CLI groups the runs on one machine (``empirical.tasks.plan``: every
     seed in one program, each run drawing its own seed's batches), as Ray tasks group them (one program per
     seed), and as one program of 15 runs sharing batches (5 activations x 3 inits under one seed); timed per
     epoch of ``--steps`` steps between the engine's progress callbacks, the first epoch (set-up, first probe)
     dropped.
(b+) the engine with the default probes (every ``RunConfig.probe_every`` steps, ``probe_size`` images):
     one step + one probe / probe_every, the probe timed on its own (best of the trials) on the one program.
(b) compiled: the engine as the CLI runs it with the step's forward and loss under ``torch.compile`` (inductor),
     reported as its ratio to the eager engine; the first epoch, which compiles, is reported apart
     (``--no-compile`` skips this row; ``--quick`` skips it unless ``--compile`` is given).
(c)  the family's ceiling: only the step's matmuls / convolutions at the engine's shapes, batched over the
     runs, each run on its own tensors, timed as a whole step (every layer's forward, then the backward in
     reverse). MLP: baddbmm/bmm forward, weight and input gradients; TinyVGG: conv2d forward and
     convolution_backward (weight and input gradients) one run at a time, grouped by activation, and the mix
     of the two that is faster layer by layer, the best of the three; plus the classifier's bmm.
(c+) a low estimate of what any implementation of the step runs: (c) plus the step's other kernels at the engine's
     shapes, timed apart (every activation on its own runs forward and backward, TinyVGG's max pooling and the
     per-run cross-entropy together; fused Adam on the stacked parameters alone); engine/(c+) is what the engine's
     overhead leaves.

Where a target is missed, the first of these that would miss it too is printed with it, loosest first: the
ceiling, (c+), and for TinyVGG (c+) with the engine's own convolution strategy in place of the ceiling's fastest
(on a CPU one conv2d per run, the exact one).

Each figure is the best over ``--repeats`` trials. Every (family, row) runs in its own process, so that its peak
resident memory (ru_maxrss) is its own; the data (``--steps`` x 128 images) is made in each process.
``--malloc keep`` (the default) starts each row's process with glibc keeping freed memory (MALLOC_MMAP_MAX_=0:
no allocation of its own mmap, MALLOC_TRIM_THRESHOLD_=4 GiB: the heap is never trimmed), so that each process
faults its pages in once: with glibc's defaults a loop that frees and reallocates tensors of several MB every step
has their pages returned to the kernel and faulted in again (TinyVGG 1x28x28: 1.8 million minor faults in the
ceiling's process, 0.65 million in the plain loop's, 1.8 million in the engine's). ``--malloc default`` measures
with glibc's defaults. The minor page faults of each row's process are reported.
``--clock cpu`` times the process's CPU time: with ``--threads 1`` it is nearly immune to other processes
on a shared machine (with more threads OpenMP's spin-waiting inflates it).

    python benchmarks/throughput.py [--quick] [--family mlp,deep,vgg28,vgg32] [--steps S] [--repeats K]
                                    [--threads T] [--clock wall|cpu] [--device cpu|cuda] [--[no-]compile]
                                    [--malloc keep|default] [--json out.json]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from empirical import probes  # noqa: E402
from empirical.config import RunConfig, StudyConfig  # noqa: E402
from empirical.models import Arch, StackedModel, conv_strategy, init_params, max_pool2, torch_activation  # noqa: E402
from empirical.tasks import plan  # noqa: E402
from empirical.train import _hidden_shapes, _order, make_optimizer, train_group  # noqa: E402
from theory import activations as registry  # noqa: E402

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "silu")
SEEDS = (42, 451, 7)
INITS_ONE_PROGRAM = ("default", "he", "xavier")
LR = 1e-3
MEAN, STD = 0.1307, 0.3081
TORCH_ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
ROWS = ("a", "a1", "v", "a1_ftz", "v_ftz", "b_cli", "b_seed", "b_one", "c")
ROW_NAMES = {"a": "(a)  seeds: PIL/ToTensor/Normalize DataLoader, 1 model at a time",
             "a1": "(a') plain PyTorch loop on in-memory tensors, 1 model at a time",
             "v": "(v)  torch.func stack_module_state + functional_call + vmap",
             "a1_ftz": "(a') with subnormals flushed (torch.set_flush_denormal)",
             "v_ftz": "(v)  with subnormals flushed (torch.set_flush_denormal)",
             "b_cli": "(b)  engine as the CLI groups the runs (all seeds, 1 program)",
             "b_seed": "(b)  engine, one program per seed (as Ray tasks group them)",
             "b_one": "(b)  other runs: one seed x inits default/he/xavier, 1 program",
             "b_probes": "(b+) engine, one program, default probes",
             "b_compiled": "(b)  engine as the CLI runs it, step under torch.compile",
             "c": "(c)  ceiling: the step's matmuls/convolutions only",
             "c_floor": "(c+) (c) + activations, pooling, loss, Adam: the step's kernels"}
MALLOC_KEEP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(4 * 2 ** 30)}
TARGETS = {"a1": 2.0, "v": 1.2, "c_mlp": 0.65, "c_tinyvgg": 0.50, "probes": 0.10, "cli": 0.05}


@dataclass(frozen=True)
class Family:
    label: str
    model: str
    input_shape: tuple[int, ...]
    widths: tuple[int, ...] = (128, 64)
    channels: int = 8
    steps: int = 50

    def arch(self) -> Arch:
        return Arch(self.model, self.input_shape, 10, self.widths, self.channels)


FAMILIES = {
    "mlp": Family("MLP 784-128-64-10, 1x28x28", "mlp", (1, 28, 28), steps=50),
    "deep": Family("deep narrow MLP 784-(128 x 50)-10, 1x28x28", "mlp", (1, 28, 28), widths=(128,) * 50, steps=20),
    "vgg28": Family("TinyVGG 8 channels, 1x28x28", "tinyvgg", (1, 28, 28), channels=8, steps=8),
    "vgg32": Family("TinyVGG 16 channels, 3x32x32", "tinyvgg", (3, 32, 32), channels=16, steps=4),
}


@dataclass(frozen=True)
class Setup:
    family: str
    steps: int
    repeats: int
    batch: int = 128
    n_acts: int = len(ACTIVATIONS)
    n_seeds: int = len(SEEDS)
    device: str = "cpu"
    threads: int | None = None
    clock: str = "wall"
    malloc: str = "keep"

    @property
    def fam(self) -> Family:
        return FAMILIES[self.family]

    @property
    def acts(self) -> tuple[str, ...]:
        return ACTIVATIONS[:self.n_acts]

    @property
    def seeds(self) -> tuple[int, ...]:
        return SEEDS[:self.n_seeds]

    @property
    def runs(self) -> int:
        return self.n_acts * self.n_seeds


# --------------------------------------------------------------------------- shared pieces

def _clock(setup: Setup):
    return time.perf_counter if setup.clock == "wall" else time.process_time


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_data(setup: Setup, seed: int = 0) -> SimpleNamespace:
    """uint8 images (N, H, W) or (N, H, W, 3), their normalised float copy [N, C, H, W], labels; N = steps × batch."""
    fam, n = setup.fam, setup.steps * setup.batch
    c, h, w = fam.input_shape
    g = torch.Generator().manual_seed(seed)
    shape = (n, h, w) if c == 1 else (n, h, w, c)
    x8 = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (x8.float() / 255.0 - MEAN) / STD
    x = x.unsqueeze(1) if c == 1 else x.permute(0, 3, 1, 2).contiguous()
    return SimpleNamespace(x8=x8, x_train=x, y_train=y, x_test=x[:setup.batch], y_test=y[:setup.batch],
                           num_classes=10, input_shape=fam.input_shape)


def seeds_model(fam: Family, act: str) -> nn.Sequential:
    """The seeds' model as plain nn.Sequential (TinyVGG: conv-act-conv-act-pool twice, then a linear layer)."""
    a = TORCH_ACT[act]
    if fam.model == "mlp":
        dims = [math.prod(fam.input_shape), *fam.widths]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, o in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(i, o), a()]
        return nn.Sequential(*layers, nn.Linear(dims[-1], 10))
    c, h, w = fam.input_shape
    k = fam.channels
    return nn.Sequential(nn.Conv2d(c, k, 3, padding=1), a(), nn.Conv2d(k, k, 3, padding=1), a(), nn.MaxPool2d(2),
                         nn.Conv2d(k, k, 3, padding=1), a(), nn.Conv2d(k, k, 3, padding=1), a(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(k * (h // 4) * (w // 4), 10))


def _best_steps(step, n_warm: int, steps: int, repeats: int, device, clock) -> float:
    """Best over ``repeats`` trials of the seconds ``steps`` calls of ``step`` take, after ``n_warm`` calls."""
    for _ in range(n_warm):
        step()
    best = math.inf
    for _ in range(repeats):
        sync(device)
        t0 = clock()
        for _ in range(steps):
            step()
        sync(device)
        best = min(best, clock() - t0)
    return best


# --------------------------------------------------------------------------- (a), (a') one model at a time

class SeedsImages(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST/CIFAR10's __getitem__: uint8 array -> PIL image -> transform."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor, transform):
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.data[i].numpy())
        return self.transform(img), int(self.targets[i])


def one_at_a_time(setup: Setup, data, pil: bool) -> dict:
    """(a) with ``pil``, else (a'): each of the R models trained alone; per model the best trial, summed."""
    device, clock = torch.device(setup.device), _clock(setup)
    fam = setup.fam
    if pil:
        from torchvision import transforms

        c = fam.input_shape[0]
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,) * c, (STD,) * c)])
        loader = torch.utils.data.DataLoader(SeedsImages(data.x8, data.y_train, tf), batch_size=setup.batch,
                                             shuffle=True, num_workers=0)
    else:
        x, y = data.x_train.to(device), data.y_train.to(device)
    total = 0.0
    for seed in setup.seeds:
        for act in setup.acts:
            torch.manual_seed(seed)
            model = seeds_model(fam, act).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=LR)
            state = {"it": None, "perm": None, "s": 0}

            def batch():
                if pil:
                    try:
                        xb, yb = next(state["it"])
                    except (StopIteration, TypeError):
                        state["it"] = iter(loader)
                        xb, yb = next(state["it"])
                    return xb.to(device), yb.to(device)
                if state["perm"] is None or state["s"] == setup.steps:
                    state["perm"], state["s"] = torch.randperm(len(x), device=device), 0
                idx = state["perm"][state["s"] * setup.batch:(state["s"] + 1) * setup.batch]
                state["s"] += 1
                return x[idx], y[idx]

            def step():
                xb, yb = batch()
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

            total += _best_steps(step, 2, setup.steps, setup.repeats, device, clock)
    return {"seconds_per_step": total / setup.steps}


# --------------------------------------------------------------------------- (v) torch.func ensemble

def vmap_ensemble(setup: Setup, data) -> dict:
    from torch.func import functional_call, stack_module_state, vmap

    device, clock = torch.device(setup.device), _clock(setup)
    x, y = data.x_train.to(device), data.y_train.to(device)
    groups, params = [], []
    for act in setup.acts:
        models = []
        for seed in setup.seeds:
            torch.manual_seed(seed)
            models.append(seeds_model(setup.fam, act).to(device))
        p, b = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")

        def fmodel(pp, bb, xx, base=base):
            return functional_call(base, (pp, bb), (xx,))

        groups.append((vmap(fmodel, in_dims=(0, 0, None)), p, b))
        params += list(p.values())
    opt = torch.optim.Adam(params, lr=LR)
    state = {"perm": torch.randperm(len(x), device=device), "s": 0}

    def step():
        if state["s"] == setup.steps:
            state["perm"], state["s"] = torch.randperm(len(x), device=device), 0
        idx = state["perm"][state["s"] * setup.batch:(state["s"] + 1) * setup.batch]
        state["s"] += 1
        xb, yb = x[idx], y[idx]
        loss = 0.0
        for f, p, b in groups:
            logits = f(p, b, xb)
            m = logits.shape[0]
            loss = loss + F.cross_entropy(logits.reshape(-1, 10), yb.repeat(m), reduction="sum") / len(yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return {"seconds_per_step": _best_steps(step, 2, setup.steps, setup.repeats, device, clock) / setup.steps}


# --------------------------------------------------------------------------- (b), (b+) the engine

def _common(setup: Setup, probe_every: int) -> dict:
    fam = setup.fam
    return dict(model=fam.model, widths=fam.widths, channels=fam.channels, dataset="mnist", optimizer="adam", lr=LR,
                batch_size=setup.batch, epochs=setup.repeats + 1, probe_every=probe_every)


def engine_groups(setup: Setup, layout: str, probe_every: int) -> list[list[RunConfig]]:
    """The runs as the CLI groups them on one machine (``tasks.plan``, seeds merged), one program per seed
    (Ray's tasks), or one program of 5 activations x 3 inits under one seed (shared batches)."""
    common = _common(setup, probe_every)
    if layout in ("cli", "seed"):
        fields = {f.name for f in dataclasses.fields(StudyConfig)}
        cfg = StudyConfig(activations=setup.acts, seeds=setup.seeds, models=(common["model"],),
                          **{k: v for k, v in common.items() if k in fields and k != "model"})
        return [list(t.runs) for t in plan(cfg, merge_seeds=layout == "cli")[1]]
    return [[RunConfig(activation=a, seed=setup.seeds[0], init=i, **common)
             for i in INITS_ONE_PROGRAM[:setup.n_seeds] for a in setup.acts]]


def engine(setup: Setup, data, layout: str, compile_step: bool = False) -> dict:
    """Per group, the best epoch between progress callbacks (the first dropped), summed over groups.

    ``compile_step``: the step's forward and loss under ``torch.compile``; the first epoch, which compiles,
    is reported apart (``first_epoch_s``, summed over groups)."""
    device, clock = torch.device(setup.device), _clock(setup)
    never = setup.steps * (setup.repeats + 1) + 1
    small = SimpleNamespace(**{**vars(data), "x_train": data.x_train[:2 * setup.batch],
                               "y_train": data.y_train[:2 * setup.batch]})
    warm = engine_groups(setup, "one", never)[0]
    train_group([dataclasses.replace(r, epochs=1) for r in warm], small, device, time_activations=False,
                compile_step=compile_step)
    total, first, groups = 0.0, 0.0, engine_groups(setup, layout, never)
    for runs in groups:
        stamps: list[float] = []

        def tick(_):
            sync(device)
            stamps.append(clock())

        start = clock()
        train_group(runs, data, device, progress=tick, time_activations=False, compile_step=compile_step)
        total += min(b - a for a, b in zip(stamps, stamps[1:]))
        first += stamps[0] - start
    out = {"seconds_per_step": total / setup.steps, "groups": [len(g) for g in groups], "first_epoch_s": first}
    if layout == "one":
        out["probe_seconds"] = probe_time(setup, data, groups[0])
    return out


def probe_time(setup: Setup, data, runs: list[RunConfig]) -> float:
    """Best-of-trials seconds of one default probe of the group (``probe_size`` images)."""
    device, clock = torch.device(setup.device), _clock(setup)
    ordered, acts, slices = _order(runs)
    arch = setup.fam.arch()
    model = StackedModel(arch, [torch_activation(registry.lookup(a)) for a in acts], slices,
                         conv_strategy(device))
    params = init_params(arch, [(r.activation, r.init, r.seed, r.sigma_b2) for r in ordered], device=device)
    cfg = RunConfig()
    x, y = data.x_train[:cfg.probe_size].to(device), data.y_train[:cfg.probe_size].to(device)
    return _best_steps(lambda: probes.probe(model, params, x, y, cfg.eps), 1, 1, max(setup.repeats, 2),
                       device, clock)


# --------------------------------------------------------------------------- (c) the ceiling

def ceiling(setup: Setup) -> dict:
    """The step's matmuls or convolutions alone, as a step runs them: every run on its own tensors (no run reuses
    another's input while it is still in cache), the forward through every layer, then the backward in reverse.

    TinyVGG: each strategy (one convolution per run, or grouped by activation) as a whole step, and the mix that
    takes, layer by layer, the strategy faster on that layer alone, also timed as a whole step; the best counts."""
    device, clock = torch.device(setup.device), _clock(setup)
    arch, R, B = setup.fam.arch(), setup.runs, setup.batch
    g = torch.Generator().manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, generator=g).to(device)

    def whole(layers, head=()):
        """One step: each layer's forward in order, the head, each layer's backward in reverse."""
        def step():
            for fwd, _ in layers:
                fwd()
            for f in head:
                f()
            for _, bwd in reversed(layers):
                bwd()
        return step

    def best(step):
        return _best_steps(step, 2, setup.steps, setup.repeats, device, clock) / setup.steps

    if arch.model == "mlp":
        dims = [math.prod(arch.input_shape), *arch.widths, arch.num_classes]
        x = rnd(B, dims[0]).reshape(1, B, -1).expand(R, -1, -1)
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            W, bias, h, dz = rnd(R, a, b), rnd(R, 1, b), x if i == 0 else rnd(R, B, a), rnd(R, B, b)

            def bwd(h=h, dz=dz, W=W, first=i == 0):
                torch.bmm(h.transpose(1, 2), dz)
                if not first:
                    torch.bmm(dz, W.transpose(1, 2))
            layers.append((lambda h=h, W=W, bias=bias: torch.baddbmm(bias, h, W), bwd))
        t = best(whole(layers))
        return {"seconds_per_step": t, "strategies": {"bmm": t}, **floor(setup, rnd, t, best)}

    c, hh, ww = arch.input_shape
    k = arch.channels
    shapes = [(c, hh, ww), (k, hh, ww), (k, hh // 2, ww // 2), (k, hh // 2, ww // 2)]
    per_layer: dict[str, list] = {}
    for strat, n in (("loop", 1), ("grouped", len(setup.seeds))):
        per_layer[strat] = []
        for i, (cin, h, w) in enumerate(shapes):
            blocks = [(rnd(B, n * cin, h, w), rnd(n * k, cin, 3, 3), rnd(B, n * k, h, w)) for _ in range(R // n)]
            mask = [i > 0, True, False]

            def fwd(blocks=blocks, n=n):
                for xin, W, _ in blocks:
                    F.conv2d(xin, W, padding=1, groups=n)

            def bwd(blocks=blocks, n=n, mask=mask):
                for xin, W, dz in blocks:
                    torch.ops.aten.convolution_backward(dz, xin, W, None, [1, 1], [1, 1], [1, 1], False, [0, 0], n,
                                                        mask)
            per_layer[strat].append((fwd, bwd))
    flat = k * (hh // 4) * (ww // 4)
    hf, Wf, dzf = rnd(R, B, flat), rnd(R, flat, 10), rnd(R, B, 10)
    head = [lambda: torch.bmm(hf, Wf), lambda: torch.bmm(hf.transpose(1, 2), dzf),
            lambda: torch.bmm(dzf, Wf.transpose(1, 2))]
    times = {s: best(whole(layers, head)) for s, layers in per_layer.items()}
    alone = {s: [best(whole([layer])) for layer in layers] for s, layers in per_layer.items()}
    mix = [min(per_layer, key=lambda s: alone[s][i]) for i in range(len(shapes))]
    if len(set(mix)) > 1:
        times["mixed " + "/".join(mix)] = best(whole([per_layer[s][i] for i, s in enumerate(mix)], head))
    t = min(times.values())
    return {"seconds_per_step": t, "strategies": times, "per_layer_alone": alone, **floor(setup, rnd, t, best)}


def floor(setup: Setup, rnd, ceiling_s: float, best: Callable) -> dict:
    """(c+): the ceiling's step time (``ceiling_s``) plus the step's other kernels, each once at the engine's shapes:
    every activation on its own runs, TinyVGG's 2x2 max pooling (the engine's ``max_pool2``) and the per-run
    cross-entropy (their forwards, then one autograd pass for their backwards), timed together, and fused Adam
    on the stacked parameters, timed alone. The three are timed apart, each at its best, so their sum is a low
    estimate of what any implementation of the step has to run."""
    arch, R, B, n, device = setup.fam.arch(), setup.runs, setup.batch, setup.n_seeds, torch.device(setup.device)
    fns = [torch_activation(registry.lookup(a)) for a in setup.acts]
    # one activation's n runs side by side: [n, B, w] for the MLP, [B, n·k, H, W] for TinyVGG (pooled after 2 and 4)
    maps = [((n, *s), False) if arch.model == "mlp" else ((s[0], n * s[1], *s[2:]), i in (1, 3))
            for i, s in enumerate(_hidden_shapes(arch, B))]
    kernels = []   # (function, its input, the gradient of its output)

    def through(fn, shape, out_shape=None):
        gshape = shape if out_shape is None else out_shape
        grad = rnd(*gshape) if gshape else torch.ones((), device=device)
        kernels.append((fn, rnd(*shape).requires_grad_(True), grad))
    for shape, pooled in maps:
        for fn in fns:
            through(fn, shape)
            if pooled:
                through(max_pool2, shape, (*shape[:2], shape[2] // 2, shape[3] // 2))
    y = torch.randint(0, 10, (R * B,), device=device)
    through(lambda t: F.cross_entropy(t, y, reduction="none").view(R, B).mean(1).sum(), (R * B, 10), ())
    params = init_params(arch, [(a, "default", seed, 0.0) for a in setup.acts for seed in setup.seeds], device=device)
    for t in params:
        t.grad = rnd(*t.shape)
    opt = make_optimizer(params, RunConfig(lr=LR))
    inputs, grads = [z for _, z, _ in kernels], [gz for _, _, gz in kernels]

    def step():
        torch.autograd.grad([fn(z) for fn, z, _ in kernels], inputs, grads)
    parts = {"kernels": best(step), "adam": best(opt.step)}
    return {"floor_seconds_per_step": ceiling_s + sum(parts.values()), "floor_parts": parts}


# --------------------------------------------------------------------------- one row in its own process

def measure(setup: Setup, row: str) -> dict:
    if row.endswith("_ftz"):  # the engine's own trick, given to the baselines: what batching alone buys
        flushed = torch.set_flush_denormal(True)
        try:
            return {**measure(setup, row[:-4]), "flushed": flushed}
        finally:
            torch.set_flush_denormal(False)
    if setup.threads:
        torch.set_num_threads(setup.threads)
    data = make_data(setup)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if setup.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if row in ("a", "a1"):
        out = one_at_a_time(setup, data, pil=row == "a")
    elif row == "v":
        out = vmap_ensemble(setup, data)
    elif row in ("b_cli", "b_seed", "b_one"):
        out = engine(setup, data, row[2:])
    elif row == "b_compiled":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = engine(setup, data, "cli", compile_step=True)
        out["fell_back"] = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    else:
        out = ceiling(setup)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_before_mb"] = rss0 / 1024
    out["minor_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    out["malloc_env"] = {k: os.environ.get(k) for k in MALLOC_KEEP}
    if setup.device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    out["samples_per_s"] = setup.batch * setup.runs / out["seconds_per_step"]
    return out


def run_row(setup: Setup, row: str, isolate: bool) -> dict:
    if not isolate:
        return measure(setup, row)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                           json.dumps({"setup": dataclasses.asdict(setup), "row": row})],
                          capture_output=True, text=True,
                          env={**os.environ, **(MALLOC_KEEP if setup.malloc == "keep" else {})})
    if proc.returncode != 0:
        raise SystemExit(f"{setup.family} {row} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(setup: Setup, res: dict) -> dict:
    """Ratios of the engine as the CLI runs it (``b_cli``: the same 15 runs as (a), (a'), (v)) to the other rows.

    ``b_one`` trains other runs (one seed, inits default/he/xavier: shared batches, and no default-init deep
    nets whose signals decay into float32 denormals), so it is shown but not used for the ratios; the CLI
    target is that the CLI trains the runs as one program (its groups are [R])."""
    sps = {k: v["samples_per_s"] for k, v in res.items()}
    one, cli = res["b_one"], res["b_cli"]
    probe_every = RunConfig().probe_every
    with_probes = one["seconds_per_step"] + one["probe_seconds"] / probe_every
    sps["b_probes"] = setup.batch * setup.runs / with_probes
    sps["c_floor"] = setup.batch * setup.runs / res["c"]["floor_seconds_per_step"]
    c = res["c"]
    # TinyVGG's (c+) with the engine's own convolution strategy (one conv2d per run on a CPU, the exact one)
    # in place of the ceiling's fastest: the low estimate for the engine as it must run
    conv = None if setup.fam.model == "mlp" else conv_strategy(setup.device)
    engine_conv = c["strategies"].get(conv, c["seconds_per_step"])
    floor_engine = setup.batch * setup.runs / (
        c["floor_seconds_per_step"] - c["seconds_per_step"] + engine_conv)
    c_target = TARGETS["c_tinyvgg" if setup.fam.model == "tinyvgg" else "c_mlp"]
    q = {"over_a": sps["b_cli"] / sps["a"], "over_a1": sps["b_cli"] / sps["a1"], "over_v": sps["b_cli"] / sps["v"],
         "of_c": sps["b_cli"] / sps["c"], "probe_overhead": with_probes / one["seconds_per_step"] - 1,
         "cli_vs_one": sps["b_cli"] / sps["b_one"] - 1, "cli_over_a1": sps["b_cli"] / sps["a1"],
         "over_a1_ftz": sps["b_cli"] / sps["a1_ftz"], "over_v_ftz": sps["b_cli"] / sps["v_ftz"],
         "one_over_a1": sps["b_one"] / sps["a1"], "c_over_a1": sps["c"] / sps["a1"], "c_over_v": sps["c"] / sps["v"],
         "of_floor": sps["b_cli"] / sps["c_floor"], "floor_of_c": sps["c_floor"] / sps["c"],
         "floor_over_a1": sps["c_floor"] / sps["a1"], "floor_over_v": sps["c_floor"] / sps["v"],
         "floor_engine_over_a1": floor_engine / sps["a1"], "floor_engine_over_v": floor_engine / sps["v"],
         "floor_engine_of_c": floor_engine / sps["c"]}
    if "b_compiled" in sps:
        q["compiled_over_eager"] = sps["b_compiled"] / sps["b_cli"]
    met = {"over_a1": q["over_a1"] >= TARGETS["a1"], "over_v": q["over_v"] >= TARGETS["v"],
           "of_c": q["of_c"] >= c_target, "probe_overhead": q["probe_overhead"] <= TARGETS["probes"],
           "cli_vs_one": list(cli.get("groups", [])) == [setup.runs]}
    return {"samples_per_s": sps, "ratios": q, "met": met, "c_target": c_target, "engine_conv": conv}


def report(setup: Setup, res: dict, s: dict) -> None:
    fam = setup.fam
    print(f"\n== {setup.family}: {fam.label}; R = {setup.runs} runs, batch {setup.batch}, {setup.steps} steps per trial, "
          f"best of {setup.repeats}")
    print(f"{'':66s} {'model-samples/s':>15s} {'peak RSS':>9s}  notes")
    for row in (*ROWS[:8], "b_probes", "c", "c_floor", "b_compiled"):
        if row not in s["samples_per_s"]:
            continue
        r = res.get(row, res["c"] if row == "c_floor" else res["b_one"])
        note = ""
        if row.startswith("b_") and row not in ("b_probes", "b_compiled"):
            note = f"groups of {r['groups']}"
        elif row == "b_probes":
            note = f"probe {r['probe_seconds'] * 1e3:.1f} ms every {RunConfig().probe_every} steps"
        elif row == "c":
            note = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r["strategies"].items()) + " per step"
        elif row == "c_floor":
            note = (f"{r['floor_seconds_per_step'] * 1e3:.1f} ms per step: (c) + "
                    + " + ".join(f"{k} {v * 1e3:.1f} ms" for k, v in r["floor_parts"].items()))
        rss = "" if row in ("b_probes", "c_floor") else f"{r['peak_rss_mb']:7.0f}MB"
        if row not in ("b_probes", "c_floor") and "minor_faults" in r:
            note = f"{note}; " * bool(note) + f"{r['minor_faults']:,} page faults"
        print(f"{ROW_NAMES[row]:66s} {s['samples_per_s'][row]:>15,.0f} {rss:>9s}  {note}")
    q, m = s["ratios"], s["met"]

    def ok(k):
        return "met" if m[k] else "NOT met"

    def bound(k, target, *limits):
        """Where the target is missed: the first of ``limits`` (label, ratio), loosest first, that misses it too,
        i.e. the target is out of reach of anything that runs what that row runs."""
        if m[k]:
            return ""
        worse = [f"{label} is only {r:.0%} of (c)" if k == "of_c" else f"{label} is only {r:.2f}x"
                 for label, r in limits if r < target]
        return f"; {worse[0]}" if worse else ""
    conv = [f"(c+) with the engine's {s['engine_conv']} convolutions"] if s["engine_conv"] else []
    ratio_limits = {k: [("the ceiling itself", q[f"c_{k}"]), ("(c+) itself", q[f"floor_{k}"]),
                        *((label, q[f"floor_engine_{k}"]) for label in conv)] for k in ("over_a1", "over_v")}
    print(f"engine/(a)  {q['over_a']:6.2f}x   engine/(a') {q['over_a1']:6.2f}x [>= {TARGETS['a1']}x: {ok('over_a1')}"
          f"{bound('over_a1', TARGETS['a1'], *ratio_limits['over_a1'])}]   engine/(v) {q['over_v']:6.2f}x "
          f"[>= {TARGETS['v']}x: {ok('over_v')}{bound('over_v', TARGETS['v'], *ratio_limits['over_v'])}]")
    print(f"with subnormals flushed in the baselines too (what batching alone buys): engine/(a') "
          f"{q['over_a1_ftz']:6.2f}x   engine/(v) {q['over_v_ftz']:6.2f}x")
    c_limits = [("(c+) itself", q["floor_of_c"]), *((label, q["floor_engine_of_c"]) for label in conv)]
    print(f"engine/(c)  {q['of_c']:6.1%} [>= {s['c_target']:.0%}: {ok('of_c')}{bound('of_c', s['c_target'], *c_limits)}]"
          f"   engine/(c+) {q['of_floor']:6.1%}   probe overhead "
          f"{q['probe_overhead']:6.1%} [<= {TARGETS['probes']:.0%}: {ok('probe_overhead')}]   CLI trains one program: "
          f"{ok('cli_vs_one')}  (engine = the CLI's row, the same runs as (a') and (v); the one-seed, three-init "
          f"program of other runs: {q['one_over_a1']:.2f}x (a'))")
    if "compiled_over_eager" in q:
        r = res["b_compiled"]
        print(f"torch.compile of the step: {q['compiled_over_eager']:.2f}x the eager engine; first epoch (compiling) "
              f"{r['first_epoch_s']:.1f} s against {res['b_cli']['first_epoch_s']:.1f} s eager"
              + (f"; FELL BACK to eager: {r['fell_back'][0]}" if r["fell_back"] else ""))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}")
    p.add_argument("--steps", type=int, default=None, help="steps per trial (default: per family, 50/20/8/4)")
    p.add_argument("--repeats", type=int, default=3, help="trials of each measurement; the best counts (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or this process's CPU time (use with --threads 1 on a busy machine)")
    p.add_argument("--no-isolate", action="store_true", help="all rows in this process (peak RSS then cumulative)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 activations x 2 seeds, batch 8, 2 steps, 1 trial, 1 thread, in this process")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the engine with its step under torch.compile (a row of its own; compiling takes "
                        "about a minute per family on 2 cores) (default: on, off with --quick)")
    p.add_argument("--malloc", choices=("keep", "default"), default="keep",
                   help="glibc's allocator in each row's process: 'keep' freed memory (no page faults from "
                        "returning and refaulting it; the default), or glibc's 'default' settings")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        spec = json.loads(a.worker)
        print(json.dumps(measure(Setup(**spec["setup"]), spec["row"])))
        return {}
    families = [f.strip() for f in a.family.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        p.error(f"unknown family {', '.join(bad) or '(none)'}; allowed: {', '.join(FAMILIES)}")
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA GPU; allowed here: cpu")
    if a.steps is not None and a.steps < 1 or a.repeats < 1:
        p.error("--steps and --repeats must be at least 1")
    quick = dict(batch=8, n_acts=2, n_seeds=2) if a.quick else {}
    if a.quick and a.threads is None:
        a.threads = 1
    if a.compile is None:
        a.compile = not a.quick
    isolate = not (a.no_isolate or a.quick)
    malloc = a.malloc if isolate else "default (rows in this process)"
    load0 = os.getloadavg()
    print(f"device {a.device} ({platform.machine()}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
          f"{a.threads or torch.get_num_threads()} threads, {a.clock} clock; load average {load0[0]:.2f}; "
          f"glibc malloc {malloc}"
          + ("; QUICK smoke run, not a measurement" if a.quick else ""))
    out = {"meta": {"device": a.device, "torch": torch.__version__, "machine": platform.machine(),
                    "cpu_count": os.cpu_count(), "threads": a.threads or torch.get_num_threads(), "clock": a.clock,
                    "malloc": malloc,
                    "loadavg_start": load0, "quick": a.quick, "probe_every": RunConfig().probe_every,
                    "probe_size": RunConfig().probe_size, "date": time.strftime("%Y-%m-%d %H:%M")},
           "families": {}}
    for fam in families:
        steps = 2 if a.quick else (a.steps or FAMILIES[fam].steps)
        setup = Setup(fam, steps, 1 if a.quick else a.repeats, device=a.device, threads=a.threads, clock=a.clock,
                      malloc=a.malloc, **quick)
        rows = ROWS + (("b_compiled",) if a.compile else ())
        res = {row: run_row(setup, row, isolate) for row in rows}
        s = summarise(setup, res)
        report(setup, res, s)
        out["families"][fam] = {"setup": dataclasses.asdict(setup), "rows": res, **s}
    out["meta"]["loadavg_end"] = os.getloadavg()
    print(f"\nload average at the end {out['meta']['loadavg_end'][0]:.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
