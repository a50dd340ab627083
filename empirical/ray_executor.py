"""The Ray executor: each task (one group of runs the batched engine trains together) is one Ray task.

The driver (this process) holds the results folder's lock and does every write: a task's records
come back as a Ray object, and ``commit(records)`` writes them (atomically, as the local executor
does) as soon as that task finishes, in completion order. A killed driver therefore loses only the
tasks still in flight, and running the same command again resumes. The merged tables are ordered by
the study's run order, so the results do not depend on which task finished first.

Workers never receive tensors: each gets the task's ``DataSpec`` and loads the data itself
(``empirical.tasks.load_data`` memoises one data set per worker process).

Cluster address: ``None`` starts a local Ray instance on this machine (or reuses one this process
already started, or connects to ``$RAY_ADDRESS`` if set); ``auto``, ``HOST:PORT`` (the head's GCS port,
6379 by default) or ``ray://HOST:PORT`` (Ray Client, 10001 by default) connect to a running cluster,
and then the ``theory`` and ``empirical`` packages of this checkout are shipped to the workers
(``runtime_env={"py_modules": [...]}``), so every node runs the driver's code.
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
import sys
from typing import Callable, Sequence

from empirical.config import ConfigError, StudyConfig
from empirical.tasks import Task, data_spec, run_task

RAY_MISSING = "--executor ray needs Ray: pip install -e '.[ray]'"

_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_ADDRESS = re.compile(rf"^(?P<client>ray://)?(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?$")
_DEFAULT_PORT = {True: 10001, False: 6379}


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a cluster address, None for ``auto``; ConfigError if it is not one of
    ``auto``, ``HOST:PORT``, ``ray://HOST[:PORT]``."""
    text = address.strip()
    if text == "auto":
        return None
    m = _ADDRESS.match(text)
    port = int(m["port"]) if m and m["port"] else None
    if not m or (port is None and not m["client"]) or (port is not None and not 0 < port < 65536):
        raise ConfigError(
            f"--ray-address {address!r} is not a Ray address; use auto, HOST:PORT (the head node's port, "
            "6379 by default) or ray://HOST:PORT (Ray Client, 10001 by default)")
    return m["host"].strip("[]"), port or _DEFAULT_PORT[bool(m["client"])]


def check_options(device: str, address: str | None, cpus_per_task: float, gpus_per_task: float) -> None:
    """Reject impossible resource requests before anything starts; ConfigError names the flag."""
    if not (isinstance(cpus_per_task, (int, float)) and math.isfinite(cpus_per_task) and cpus_per_task > 0):
        raise ConfigError(f"--ray-cpus-per-task must be a number > 0, got {cpus_per_task!r}")
    if not (isinstance(gpus_per_task, (int, float)) and math.isfinite(gpus_per_task) and gpus_per_task >= 0):
        raise ConfigError(f"--ray-gpus-per-task must be a number >= 0, got {gpus_per_task!r}")
    if gpus_per_task > 1 and gpus_per_task != int(gpus_per_task):
        raise ConfigError(f"--ray-gpus-per-task above 1 must be a whole number, got {gpus_per_task!r}")
    if device == "cuda" and gpus_per_task == 0:
        raise ConfigError("--device cuda on Ray needs --ray-gpus-per-task > 0 (e.g. 1, or 0.5 to put two tasks "
                          "on one GPU); Ray hides GPUs from tasks that did not ask for one")
    if device == "cpu" and gpus_per_task > 0:
        raise ConfigError("--ray-gpus-per-task reserves GPUs but --device is cpu; use --device auto (each task "
                          "then trains on the GPU Ray gives it)")
    if address is not None:
        parse_address(address)


def preflight(cfg: StudyConfig, address: str | None = None, cpus_per_task: float = 1.0,
              gpus_per_task: float = 0.0) -> None:
    """What can be checked before the results folder is touched: the options, that Ray imports, that the
    cluster's address answers, or that this machine has the CPUs/GPUs one task asks for (local instance)."""
    check_options(cfg.device, address, cpus_per_task, gpus_per_task)
    ray = _import_ray()
    address = _effective(address)
    if address is None and not ray.is_initialized():
        n = _cpus()
        if cpus_per_task > n:
            raise ConfigError(f"--ray-cpus-per-task {cpus_per_task:g} is more than the {n} CPUs of this machine "
                              "(the local Ray instance); lower it or give --ray-address of a cluster")
        import torch

        if gpus_per_task > torch.cuda.device_count():
            raise ConfigError(f"--ray-gpus-per-task {gpus_per_task:g} but this machine has "
                              f"{torch.cuda.device_count()} GPUs; give --ray-address of a cluster with GPUs")
    elif address is not None:
        hostport = parse_address(address)
        if hostport is not None:
            _reachable(*hostport)


def _effective(address: str | None) -> str | None:
    """The address given, else ``$RAY_ADDRESS`` (Ray's own convention), else None: a local instance."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _reachable(host: str, port: int, timeout: float = 5.0) -> None:
    """Fail fast (Ray itself retries an unreachable GCS for minutes)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach a Ray cluster at {host}:{port} ({exc.strerror or exc}); start one with "
                          "'ray start --head' or check --ray-address") from None


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ship_code_env() -> dict:
    """runtime_env that uploads this checkout's ``theory`` and ``empirical`` to every worker."""
    import empirical
    import theory

    dirs = [os.path.dirname(os.path.abspath(m.__file__)) for m in (theory, empirical)]  # paths: Ray Client copies it
    return {"py_modules": dirs, "excludes": ["__pycache__", "*.pyc"]}


def _connect(ray, address: str | None, gpus_per_task: float, ship_code: bool | None) -> bool:
    """Initialise Ray; True if this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    address = _effective(address)
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address is None:
        ray.init(address="local", num_cpus=_cpus(), include_dashboard=False,
                 runtime_env=ship_code_env() if ship_code else None, **quiet)
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_task > gpus:
            ray.shutdown()
            raise ConfigError(f"--ray-gpus-per-task {gpus_per_task:g} but this machine's Ray sees {gpus:g} GPUs")
        return True
    try:
        ray.init(address=address.strip(), runtime_env=ship_code_env() if ship_code is not False else None, **quiet)
    except ConnectionError as exc:
        hint = ""
        if "RAY_AUTH_MODE" not in os.environ:
            hint = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token and the cluster's token "
                    "(RAY_AUTH_TOKEN, or ~/.ray/auth_token)")
        raise ConfigError(f"cannot connect to Ray at {address}: {exc}{hint}") from None
    return True


def _feasible(ray, cpus: float, gpus: float) -> bool:
    """Whether some alive node has the resources one task asks for."""
    for node in ray.nodes():
        res = node.get("Resources", {})
        if node.get("Alive") and res.get("CPU", 0) >= cpus and res.get("GPU", 0) >= gpus:
            return True
    return False


def _work(task: Task, spec, device: str, time_activations: bool, threads: int, layer_quantiles: bool = True,
          compile_step: bool = False):
    """Body of one Ray task: train the group, return its records (plain, picklable dataclasses)."""
    import torch

    torch.set_num_threads(threads)
    return run_task(task, spec, device, time_activations, layer_quantiles=layer_quantiles, compile_step=compile_step)


def _reraise(exc) -> None:
    """Raise a failed task's own exception (a DataError stays a DataError: one line in the CLI)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Exception):
        raise cause from exc
    raise exc


def run_ray(cfg: StudyConfig, tasks: Sequence[Task], commit: Callable, progress: bool = True,
            address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
            ship_code: bool | None = None, max_retries: int = 2) -> None:
    """Run every task as a Ray task of ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs; ``commit`` each
    task's records in this process as it finishes. ``ship_code`` (default: only when connecting to a
    cluster) uploads the ``theory``/``empirical`` packages to the workers. A Ray instance this call
    started is shut down at the end; remaining tasks are cancelled on error or Ctrl-C."""
    preflight(cfg, address, cpus_per_task, gpus_per_task)
    ray = _import_ray()
    if not tasks:
        return
    started = _connect(ray, address, gpus_per_task, ship_code)
    pending: dict = {}
    try:
        if not _feasible(ray, cpus_per_task, gpus_per_task):
            print(f"warning: no Ray node has the {cpus_per_task:g} CPUs and {gpus_per_task:g} GPUs one task asks "
                  "for; the tasks wait until such a node joins", file=sys.stderr)
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries)(_work)
        threads = max(1, int(cpus_per_task))
        # a task given a GPU must use it: 'auto' would fall back to the CPU silently
        device = "cuda" if gpus_per_task > 0 and cfg.device == "auto" else cfg.device
        pending = {remote.remote(t, data_spec(cfg, t.runs[0]), device, cfg.time_activations, threads,
                                 cfg.layer_quantiles, cfg.compile): t
                   for t in tasks}
        total_runs = sum(len(t.runs) for t in tasks)
        from tqdm.auto import tqdm

        with tqdm(total=len(tasks), unit="task", disable=not progress, file=sys.stderr, dynamic_ncols=True,
                  desc="training (ray)") as bar:
            done_runs = 0
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    task = pending.pop(ref)
                    try:
                        records = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        _reraise(exc)
                    commit(records)
                    del records
                    done_runs += len(task.runs)
                    bar.set_postfix_str(f"{done_runs}/{total_runs} runs")
                    bar.update(1)
    finally:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort: the task may have finished meanwhile
                pass
        if started:
            ray.shutdown()
