"""Running a study: plan its tasks (``empirical.tasks``), skip finished runs, train the rest with an executor,
write each task's runs atomically, merge the tables.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from empirical import results
from empirical.config import ConfigError, RunConfig, StudyConfig
from empirical.executors import run_local, run_ray
from empirical.tasks import data_spec, load_data, plan
from empirical.timing import METHOD
from empirical.train import RunRecords, resolve_device
from theory.init import critical_sigma_w2


def preflight(cfg: StudyConfig, check_device: bool = True) -> frozenset[str]:
    """Fail before anything is written: the device exists and the data loads.

    Returns the activations that have no edge of chaos at ``cfg.sigma_b2`` (their critical-init runs
    are left out); raises ConfigError when that leaves no run at all.
    """
    if check_device:
        resolve_device(cfg.device)
    for run in {(r.seed if cfg.subset_seed is None else 0, r.train_size): r for r in cfg.runs()}.values():
        load_data(data_spec(cfg, run))
        if cfg.train_size is None and not cfg.train_sizes:
            break
    no_edge = set()
    if "critical" in cfg.inits:
        for act in cfg.activations:
            try:
                critical_sigma_w2(act, cfg.sigma_b2)
            except ValueError:
                no_edge.add(act)
        if no_edge and cfg.inits == ("critical",) and no_edge == set(cfg.activations):
            raise ConfigError(
                f"--init critical: no edge of chaos reached from the first layer at sigma_b2={cfg.sigma_b2:g} for "
                f"{', '.join(sorted(no_edge))}; "
                "try another --sigma-b2 or another --init")
    return frozenset(no_edge)


def write_samples(cfg: StudyConfig, folder: str, n_per_class: int = 2) -> None:
    """``samples.npz``: a few test images per class (pixel scale [0, 1]) for the report's figure."""
    import io
    import os

    import numpy as np

    from empirical.data import sample_images

    data = load_data(data_spec(cfg, cfg.seeds[0]))
    images, labels = sample_images(data, n_per_class)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images.numpy(), labels=labels.numpy(), class_names=np.array(data.classes))
    results.atomic_write(os.path.join(folder, "samples.npz"), buf.getvalue())


def data_facts(cfg: StudyConfig) -> dict:
    """The data set as the report names it: name, train and test sizes, input shape, classes."""
    data = load_data(data_spec(cfg, cfg.seeds[0]))
    return {"name": cfg.dataset, "train": int(len(data.x_train)), "test": int(len(data.x_test)),
            "input_shape": list(data.input_shape), "classes": int(data.num_classes)}


def write_correlation(cfg: StudyConfig, folder: str, log: Callable[[str], None] = print) -> dict:
    """``correlation.csv``: c_l and q_l of input pairs through random nets at initialisation (no training),
    for the study's activations, σ_w² grid, σ_b² and seeds; returns the measurement's settings and time."""
    import os

    from empirical import correlation

    spec = correlation.spec_for_study(cfg)
    t0 = time.perf_counter()
    rows = correlation.measure(spec, resolve_device(cfg.device))
    results.atomic_write(os.path.join(folder, "correlation.csv"), results.to_csv(rows, correlation.COLUMNS))
    took = time.perf_counter() - t0
    log(f"correlation propagation at init: {len(rows)} rows in {took:.1f} s")
    return {**dataclasses.asdict(spec), "time_s": round(took, 3)}


def _complete(folder: str, cfg: StudyConfig) -> bool:
    """study.json says this study is complete: with nothing left to train a rerun has nothing to write.
    The config is compared on the fields that change numbers (a study copied to another folder, or read
    from another data folder, is the same study)."""
    try:
        with open(os.path.join(folder, "study.json")) as fh:
            info = json.load(fh)
        diff, _, _ = results.config_diff(info["config"], cfg.to_json(), StudyConfig().to_json())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return info.get("status") == "complete" and not diff


@dataclass
class Outcome:
    folder: str
    runs: list[RunConfig]
    rows: dict[str, dict]
    trained: int
    skipped: int
    wall_time_s: float


def run_study(cfg: StudyConfig, progress: bool = True, executor: str = "local",
              log: Callable[[str], None] = print, **executor_opts) -> Outcome:
    """Train every unfinished run of ``cfg`` and write the results folder; resumable at task granularity."""
    if executor != "ray":
        from empirical import resources

        resources.check(cfg, workers=executor_opts.get("workers", 1))
    no_edge = preflight(cfg, check_device=executor != "ray")
    folder = cfg.folder
    store = results.Store(folder)
    t0 = time.perf_counter()
    one_machine = executor == "local" and executor_opts.get("workers", 1) <= 1
    with store:
        runs, groups = plan(cfg, set(), no_edge, merge_seeds=one_machine)
        legacy = store.check_study(cfg.to_json(), [[r.run_id for r in g.runs] for g in groups],
                                   defaults=StudyConfig().to_json())
        done = store.finished()
        if not os.path.lexists(store.parts) and store.merged_intact() and _complete(folder, cfg):
            # shipped without its parts/ journal (results/*): the intact merged tables are the record
            # (a deleted group folder leaves parts/ behind, and its runs are retrained)
            return Outcome(folder, runs, {}, 0, len(runs), time.perf_counter() - t0)
        _, tasks = plan(cfg, set(done), no_edge, merge_seeds=one_machine)
        if (legacy or store.legacy) and tasks:
            raise results.ResultsError(
                f"folder {folder} was written by an earlier version, one run at a time, and {len(tasks)} of its "
                "groups are unfinished: resuming would batch them differently; pick another --name (or "
                f"--out-dir), or delete {folder} to start it again")
        if not tasks and store.merged_intact() and _complete(folder, cfg):
            return Outcome(folder, runs, done, 0, len(runs), time.perf_counter() - t0)
        if no_edge:
            log(f"init critical: no edge of chaos reached from the first layer at sigma_b2={cfg.sigma_b2:g} for "
                f"{', '.join(sorted(no_edge))}; "
                "those runs are left out")
        skipped = len(runs) - sum(len(t.runs) for t in tasks)
        if skipped:
            log(f"resuming: {skipped} of {len(runs)} runs already finished in {folder}; training {len(runs) - skipped}")
        previous = store.read_study()
        resumed = skipped or bool(previous)  # the same study (check_study): its compute so far adds up
        compute = float(previous.get("compute_time_s", previous.get("wall_time_s", 0.0)) or 0.0) if resumed else 0.0
        info = {"config": cfg.to_json(), "environment": results.environment(), "status": results.STATUS_INCOMPLETE,
                "code_revision": results.code_revision(),
                "runs": len(runs), "tasks": len(tasks),
                "groups": [[r.run_id for r in g.runs] for g in groups],
                "left_out": {"init=critical (no edge of chaos)": sorted(no_edge)},
                "compute_time_s": round(compute, 3), "timing_method": METHOD}
        store.write_study(info)
        write_samples(cfg, folder)
        info["data"] = data_facts(cfg)
        store.write_study(info)
        order = [r.run_id for r in runs]

        def commit(records: Sequence[RunRecords]) -> None:
            store.write_group(records)
            store.merge(order, log)

        try:
            if executor == "ray":
                run_ray(cfg, tasks, commit, progress=progress, **executor_opts)
            else:
                run_local(cfg, tasks, commit, progress=progress, **executor_opts)
        except KeyboardInterrupt:
            store.merge(order, log)
            wall = time.perf_counter() - t0
            info.update(wall_time_s=round(wall, 3), compute_time_s=round(compute + wall, 3))
            store.write_study(info)
            raise
        rows = store.merge(order, log)
        if cfg.correlation:
            info["correlation"] = write_correlation(cfg, folder, log)
        wall = time.perf_counter() - t0
        if len(rows) != len(runs):  # pragma: no cover - a commit that did not land
            raise results.ResultsError(f"{len(runs) - len(rows)} runs of {folder} were not saved; run the same command again")
        info.update(status=results.STATUS_COMPLETE, wall_time_s=round(wall, 3),
                    compute_time_s=round(compute + (wall if tasks else 0.0), 3))
        store.write_study(info)
        return Outcome(folder, runs, rows, len(runs) - skipped, skipped, wall)
