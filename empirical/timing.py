"""Per-activation cost: each activation's model timed alone, so a speed column means that activation.

The engine trains the runs of a group together, so its wall time belongs to the group, not to any
activation. ``solo_step_times`` gives each activation its own number: one model (R = 1) of the run's
architecture, data, batch size and optimiser, trained for ``STEPS`` timed steps after ``WARMUP``
untimed ones; the activations are timed in interleaved rounds (a step of each in turn, ``ROUNDS``
times) so that a change in machine load falls on all of them alike; the figure is the median step.
Results are cached per (architecture, activation, batch, optimiser, device) within a process: the
seeds of a study share them.
"""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch

from empirical.config import RunConfig

__all__ = ["STEPS", "WARMUP", "ROUNDS", "METHOD", "solo_step_times", "attach_solo_times"]

STEPS = 5
WARMUP = 3
ROUNDS = 6
METHOD = {
    "solo_step_time_s": (f"median seconds of one training step (forward, backward, optimiser update) of the "
                         f"run's model alone (one model, same architecture, data and batch size), "
                         f"{ROUNDS} interleaved rounds of {STEPS} timed steps per activation after {WARMUP} "
                         "warm-up steps, the smallest round median; once per activation and model shape per process"),
    "solo_time_per_epoch_s": "solo_step_time_s × steps per epoch",
    "act_time_per_epoch_s": ("median seconds of the activation's own forward+backward on tensors of the model's "
                             "hidden-layer shapes at the batch size, × steps per epoch"),
    "time_per_epoch_s": "the group's batched epoch time divided by its number of runs (a share, not a per-activation cost)",
    "compute_time_s": "sum of the training time of every invocation that trained something (resumes add; a no-op rerun adds nothing)",
}

_CACHE: dict = {}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def solo_step_times(runs: Sequence[RunConfig], data, device) -> dict[str, float]:
    """activation → seconds per training step of that activation's model alone (see the module docstring)."""
    from empirical.models import Arch, StackedModel, init_params, torch_activation
    from empirical.train import make_optimizer
    from theory import activations as registry

    device = torch.device(device)
    first = runs[0]
    arch = Arch(first.model, tuple(data.input_shape), data.num_classes, tuple(first.widths), first.channels)
    acts = list(dict.fromkeys(r.activation for r in runs))
    key = lambda a: (arch, a, first.batch_size, first.optimizer, first.lr, str(device))  # noqa: E731
    todo = [a for a in acts if key(a) not in _CACHE]
    if todo:
        gen = torch.Generator().manual_seed(0)
        n = len(data.x_train)
        b = min(first.batch_size, n)
        idx = [torch.randperm(n, generator=gen)[:b].to(device) for _ in range(WARMUP + STEPS)]
        x, y = data.x_train.to(device), data.y_train.to(device)
        setups = {}
        for a in todo:
            r = next(r for r in runs if r.activation == a)
            model = StackedModel(arch, [torch_activation(registry.lookup(a))], [(0, 1)])
            params = init_params(arch, [(a, r.init, r.seed, r.sigma_b2, r.sigma_w2)], device=device)
            setups[a] = (model, params, make_optimizer(params, r))

        def step(a, i):
            model, params, opt = setups[a]
            logits, _ = model.forward(params, x[idx[i]])
            loss = model.per_run_loss(logits, y[idx[i]]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for a in todo:
            for i in range(WARMUP):
                step(a, i)
        rounds = {a: [] for a in todo}
        for _ in range(ROUNDS):
            for a in todo:
                times = []
                for i in range(WARMUP, WARMUP + STEPS):
                    _sync(device)
                    t0 = time.perf_counter()
                    step(a, i)
                    _sync(device)
                    times.append(time.perf_counter() - t0)
                rounds[a].append(statistics.median(times))
        for a in todo:
            _CACHE[key(a)] = min(rounds[a])
    return {a: _CACHE[key(a)] for a in acts}


def attach_solo_times(records, data, device) -> None:
    """Add ``solo_step_time_s`` and ``solo_time_per_epoch_s`` to each record's row (in place)."""
    if not records:
        return
    t = solo_step_times([rec.config for rec in records], data, device)
    steps_per_epoch = -(-len(data.x_train) // records[0].config.batch_size)
    for rec in records:
        s = t[rec.config.activation]
        rec.row["solo_step_time_s"] = round(s, 7)
        rec.row["solo_time_per_epoch_s"] = round(s * steps_per_epoch, 6)
