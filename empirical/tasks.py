"""A study's tasks: the plan (runs grouped into batched tasks), each task's data spec, and running one task.

``run_task`` is a pure function of its inputs (runs, data spec, device) returning records, so the same task
runs in this process, in a worker process, or on a Ray worker; every executor imports it from here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from empirical.config import RunConfig, StudyConfig
from empirical.train import RunRecords, resolve_device, train_group

__all__ = ["Task", "plan", "data_spec", "load_data", "run_task", "steps_of"]


@dataclass(frozen=True)
class Task:
    """Runs that share a group key; trained as one batched program."""

    runs: tuple[RunConfig, ...]

    @property
    def steps(self) -> int:
        return self.runs[0].epochs


def plan(cfg: StudyConfig, skip: set[str] = frozenset(), no_edge: frozenset[str] = frozenset(),
         merge_seeds: bool = False) -> tuple[list[RunConfig], list[Task]]:
    """All runs of the study, and the tasks (whole groups) that train those not in ``skip``.

    A task is a group (one seed) or, with ``merge_seeds``, every seed of a data set and model in one program
    (for one machine), where the data do not depend on the seed (the full training set, or subsets drawn
    with ``subset_seed``). A group is the unit of training, of commit and of resume: it is left out only when
    every one of its runs is in ``skip``. Runs with ``init = critical`` for an activation in ``no_edge`` (no
    edge of chaos) are left out.
    """
    runs = [r for r in cfg.runs() if not (r.init == "critical" and r.activation in no_edge)]
    groups: dict[tuple, list[RunConfig]] = {}
    for r in runs:
        groups.setdefault(r.task_key(merge_seeds), []).append(r)
    return runs, [Task(tuple(g)) for g in groups.values() if not all(r.run_id in skip for r in g)]


_DATA_CACHE: dict = {}


def data_spec(cfg: StudyConfig, run: RunConfig | int):
    """The data of ``run`` (or of seed ``run`` at the study's first training-set size): the subset is
    drawn with ``subset_seed`` when set (the same for every seed), else with the run's seed."""
    from empirical.data import DataSpec

    if isinstance(run, RunConfig):
        seed, size = run.seed, run.train_size
    else:
        seed, size = run, (cfg.train_sizes[0] if cfg.train_sizes else cfg.train_size)
    return DataSpec(name=cfg.dataset, data_dir=cfg.data_dir, download=cfg.download, train_size=size,
                    seed=seed if cfg.subset_seed is None else cfg.subset_seed, normalize=cfg.normalize)


def load_data(spec):
    """The data set of ``spec``, memoised (one per process: a worker loads it once for all its tasks)."""
    from empirical.data import load

    key = spec if spec.train_size is not None else dataclasses.replace(spec, seed=0)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load(spec)
    return _DATA_CACHE[key]


def run_task(task: Task, spec, device: str, time_activations: bool = True,
             progress: Callable[[int], None] | None = None, layer_quantiles: bool = True,
             compile_step: bool = False) -> list[RunRecords]:
    """Train the task's runs together on ``spec``'s data; one ``RunRecords`` per run."""
    data = load_data(spec)
    records = train_group(task.runs, data, resolve_device(device), progress=progress,
                          time_activations=time_activations, layer_quantiles=layer_quantiles,
                          compile_step=compile_step)
    if time_activations:
        from empirical.timing import attach_solo_times

        attach_solo_times(records, data, resolve_device(device))
    return records


def steps_of(task: Task, n_train: int) -> int:
    """Optimiser steps of a task: ⌈n_train / batch⌉ per epoch."""
    r = task.runs[0]
    return -(-n_train // r.batch_size) * r.epochs
