"""Executors run a study's tasks and hand each task's records to ``commit`` as soon as it finishes.

- ``local`` (default): tasks one after another in this process, a progress bar over training steps;
  with ``workers > 1``, tasks in a pool of worker processes, a progress bar over tasks.
- ``ray``: see ``empirical.ray_executor``.
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from empirical.config import StudyConfig
from empirical.tasks import Task, data_spec, load_data, run_task, steps_of


def _bar(total: int, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                desc="training")


def run_local(cfg: StudyConfig, tasks: Sequence[Task], commit: Callable, progress: bool = True,
              workers: int = 1) -> None:
    if not tasks:
        return
    if workers > 1:
        return _run_pool(cfg, tasks, commit, progress, workers)
    n_full = len(load_data(data_spec(cfg, tasks[0].runs[0])).x_train)
    with _bar(sum(steps_of(t, t.runs[0].train_size or n_full) for t in tasks), "step", progress) as bar:
        for task in tasks:
            spec = data_spec(cfg, task.runs[0])
            seeds = ", ".join(str(sd) for sd in dict.fromkeys(r.seed for r in task.runs))
            bar.set_postfix_str(f"seeds {seeds}, {len(task.runs)} runs batched")
            commit(run_task(task, spec, cfg.device, cfg.time_activations, progress=bar.update,
                            layer_quantiles=cfg.layer_quantiles, compile_step=cfg.compile))


def _run_pool(cfg, tasks, commit, progress, workers):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_limit_threads,
                             initargs=(max(1, _cpus() // workers),)) as pool, \
            _bar(len(tasks), "task", progress) as bar:
        futures = [pool.submit(run_task, t, data_spec(cfg, t.runs[0]), cfg.device, cfg.time_activations,
                               layer_quantiles=cfg.layer_quantiles, compile_step=cfg.compile)
                   for t in tasks]
        for fut in as_completed(futures):
            commit(fut.result())
            bar.update(1)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _limit_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run_ray(cfg: StudyConfig, tasks: Sequence[Task], commit: Callable, progress: bool = True, **opts) -> None:
    """``empirical.ray_executor.run_ray``, imported only when used (Ray is optional)."""
    from empirical import ray_executor

    ray_executor.run_ray(cfg, tasks, commit, progress=progress, **opts)
