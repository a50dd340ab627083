"""Resource guard: the memory a study needs, estimated before any work, against the memory available.

For the largest batched group (R runs of P parameters each, float32):

- parameters, gradients and optimiser state: 4·R·P·(2 + m) bytes, m = 2 moments for Adam, 1 for SGD with
  momentum, 0 without; the initial draw in float64 adds 12·R·P transiently (per-run draws, then one stack);
- activations of one training step: the batch's pre-activations, activations and their gradients,
  4 copies of B·R·U floats (U = hidden units of one model, per example: Σ widths, or the conv feature maps),
  plus the input as seen by the model (TinyVGG repeats it per run);
- the probe (same at the probe batch, 6 copies: z, h, their gradients, φ′ and a mask) and the test
  evaluation in chunks of 2048 (2 copies, no gradients);
- the data set on the device in float32 (train and test), and the raw uint8 tensors beside them;
- a fixed ``OVERHEAD_BYTES`` for what a study does besides training (the activations' timing rounds, the
  verdicts and their theory after training): measured on CPU at 0.33 GB (default study) and 0.46 GB
  (lowsample) of peak RSS above the 1.03 GB the process holds after its imports.

Available memory is MemAvailable from /proc/meminfo (capped by a cgroup limit) on CPU, free memory on the
GPU. The estimate is an upper-bound-minded model, not a measurement; the README compares it with peak RSS.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

# (C, H, W) of one example, train and test sizes, of every data set (as ``empirical.data`` delivers them)
SHAPES = {
    "digits": ((1, 8, 8), 1348, 449),
    "mnist": ((1, 28, 28), 60000, 10000),
    "fashion-mnist": ((1, 28, 28), 60000, 10000),
    "cifar10": ((3, 32, 32), 50000, 10000),
    "mnist1d": ((1, 1, 40), 4000, 1000),
}
NUM_CLASSES = 10
EVAL_CHUNK = 2048
OVERHEAD_BYTES = 512 * 2**20


class ResourceError(ValueError):
    """A study that cannot fit; the message gives the estimate and what to change."""


@dataclass(frozen=True)
class Estimate:
    total_bytes: int
    group_runs: int
    params_per_run: int
    state_bytes: int
    step_bytes: int
    data_bytes: int

    def describe(self) -> str:
        return (f"about {_gb(self.total_bytes)} (largest batched group: {self.group_runs} runs x "
                f"{self.params_per_run:,} parameters; parameters+optimiser {_gb(self.state_bytes)}, "
                f"activations {_gb(self.step_bytes)}, data {_gb(self.data_bytes)}, analysis {_gb(OVERHEAD_BYTES)})")


def _gb(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def _model_size(model: str, shape, widths, channels) -> tuple[int, int, int]:
    """(parameters, hidden units per example, input floats per example per run as the model holds it)."""
    c, h, w = shape
    if model == "mlp":
        dims = [c * h * w, *widths, NUM_CLASSES]
        return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:])), sum(widths), 0
    k = channels
    params = (9 * c + 1) * k + 3 * (9 * k + 1) * k + (k * (h // 4) * (w // 4) + 1) * NUM_CLASSES
    units = 2 * k * h * w + 2 * k * (h // 2) * (w // 2) + k * (h // 2) * (w // 2) + k * (h // 4) * (w // 4)
    return params, units, c * h * w


def estimate(cfg, workers: int = 1) -> Estimate:
    """The peak memory of ``cfg`` (a validated StudyConfig) in bytes, for its largest batched program
    (one worker merges the seeds of a data set and model into one program, as ``tasks.plan`` does)."""
    shape, n_train, n_test = SHAPES[cfg.dataset]
    if cfg.train_size is not None:
        n_train = min(n_train, cfg.train_size)
    groups: dict[tuple, int] = {}
    for r in cfg.runs():
        key = r.task_key(merge_seeds=workers <= 1)
        groups[key] = groups.get(key, 0) + 1
    worst = None
    for key, R in groups.items():
        d = dict(key)
        P, U, X = _model_size(d["model"], shape, d["widths"], d["channels"])
        moments = 2 if d["optimizer"] == "adam" else (1 if d["momentum"] else 0)
        state = 4 * R * P * (2 + moments)
        init = 12 * R * P
        B = min(d["batch_size"], n_train)
        step = 4 * R * (4 * B * U + 2 * B * X) + 4 * B * math.prod(shape)
        probe = 4 * R * 6 * min(d["probe_size"], n_train) * U
        evaluate = 4 * R * 2 * min(EVAL_CHUNK, n_test) * (U + X + NUM_CLASSES)
        gram = 4 * R * max((min(a, b) ** 2 for a, b in _layer_dims(d, shape)), default=0)
        work = max(state + step, state + probe + gram, state + evaluate, init + 4 * R * P)
        total = work * workers
        if worst is None or total > worst[0]:
            worst = (total, R, P, state * workers, (work - state) * workers)
    data = (n_train + n_test) * math.prod(shape) * 5
    total, R, P, state, step = worst
    return Estimate(int(total + data + OVERHEAD_BYTES), R, P, int(state), int(step), int(data))


def _layer_dims(d: dict, shape) -> list[tuple[int, int]]:
    if d["model"] != "mlp":
        return []
    dims = [math.prod(shape), *d["widths"], NUM_CLASSES]
    return list(zip(dims[:-1], dims[1:]))


def available_bytes(device: str = "cpu") -> int | None:
    """Memory this process may still allocate: free GPU memory for cuda, else MemAvailable (cgroup-capped)."""
    if device in ("cuda", "auto"):
        try:
            import torch

            if torch.cuda.is_available():
                return int(torch.cuda.mem_get_info()[0])
        except Exception:  # noqa: BLE001 - no usable GPU: fall through to host memory
            pass
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_path) as fh:
                limit = fh.read().strip()
            with open(used_path) as fh:
                used = int(fh.read().strip())
            if limit != "max" and int(limit) < 1 << 60:
                room = int(limit) - used
                avail = room if avail is None else min(avail, room)
            break
        except (OSError, ValueError):
            continue
    return avail


def check(cfg, workers: int = 1, available: int | None = None) -> Estimate:
    """Raise ResourceError (one line with the estimate) if the study cannot fit in memory."""
    est = estimate(cfg, workers)
    room = available_bytes(cfg.device) if available is None else available
    if room is not None and est.total_bytes > room:
        raise ResourceError(
            f"the study needs {est.describe()}, but only {_gb(room)} of memory is available; use fewer "
            "activations/inits/seeds per study, a smaller --width/--depth/--channels or --batch-size, or --workers N "
            "(one program per seed, N at a time; fewer N if already set)")
    return est


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux ru_maxrss is in kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
