"""The Ray executor: same numbers as the local executor, resume after a killed driver, one-line errors.

The tests that run Ray share one local Ray instance (2 CPUs) started once for the module; they are
skipped when Ray is not installed. The option and "Ray missing" checks run without Ray.
"""
from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from empirical import run
from empirical.config import ConfigError, RunConfig, StudyConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--dataset", "digits", "--widths", "16,8", "--batch-size", "64", "--probe-every", "10",
         "--probe-size", "128", "--no-progress"]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


def _argv(tmp, name, *extra):
    return ["--out-dir", str(tmp), "--name", name, *SMALL, *extra]


def _tables(folder):
    import pandas as pd

    out = {}
    for t in ("runs", "epochs", "steps", "layers"):
        df = pd.read_csv(os.path.join(folder, f"{t}.csv"))
        out[t] = df.drop(columns=[c for c in df.columns if "time" in c and c.endswith("_s")])  # wall clock
    return out


def test_ray_results_equal_local_results(ray_session, tmp_path):
    import pandas as pd

    study = ["--activation", "relu,tanh", "--seeds", "1,2", "--epochs", "2"]
    # Ray tasks keep one program per seed; the local executor groups that way with more than one worker
    assert run.main(_argv(tmp_path, "local", *study, "--workers", "2")) == 0
    assert run.main(_argv(tmp_path, "ray", *study, "--executor", "ray")) == 0
    local, ray_ = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert len(local["runs"]) == 4 and local["runs"]["run_id"].is_unique
    assert {"final_test_acc", "first_layer_grad_final"} <= set(local["runs"].columns)
    for table in local:
        assert len(local[table]) > 0, table
        pd.testing.assert_frame_equal(ray_[table], local[table], check_exact=True, obj=table)


def test_task_error_is_raised_as_its_own_exception(ray_session):
    from empirical.ray_executor import run_ray
    from empirical.tasks import Task

    cfg = StudyConfig(activations=("relu",), seeds=(1, 2), epochs=1, widths=(8,))
    mixed = Task((RunConfig(seed=1, widths=(8,), epochs=1), RunConfig(seed=1, widths=(4,), epochs=1)))
    committed = []
    with pytest.raises(ValueError, match="runs of one program") as info:
        run_ray(cfg, [mixed], committed.append, progress=False)
    assert not isinstance(info.value, ray_session.exceptions.RayError)
    assert isinstance(info.value.__cause__, ray_session.exceptions.RayTaskError)  # it failed on a worker
    assert committed == []


def _manifests(folder):
    """manifest path -> mtime for every committed group (one manifest per group of runs)."""
    return {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(folder, "parts", "*", "manifest.json"))}


def _committed_runs(manifests):
    import json

    runs = []
    for p in manifests:
        with open(p) as fh:
            runs += json.load(fh)["runs"]
    return runs


def test_killed_driver_resumes_without_redoing_finished_tasks(ray_session, tmp_path, capsys):
    """A driver connected to the cluster is SIGKILLed after its first task is committed; the same
    command finishes the study, keeping the committed runs' files, each run exactly once."""
    address = ray_session.get_runtime_context().gcs_address
    # one task at a time (2 CPUs each on a 2-CPU cluster), 3 tasks (one per seed) of 2 runs
    argv = _argv(tmp_path, "killed", "--activation", "relu,tanh", "--seeds", "1,2,3", "--epochs", "4",
                 "--executor", "ray", "--ray-address", address, "--ray-cpus-per-task", "2")
    folder = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "empirical.run", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_manifests(folder)) < 1:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first task was never committed"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    before = _manifests(folder)
    assert 1 <= len(before) < 3, "the driver must die mid-sweep"
    finished = _committed_runs(before)
    assert len(finished) == 2 * len(before)
    assert os.path.exists(folder / ".lock")  # a killed driver leaves its lock; it is stale now

    assert run.main(argv) == 0
    assert f"resuming: {len(finished)} of 6 runs already finished" in capsys.readouterr().err
    after = _manifests(folder)
    assert len(after) == 3 and sorted(_committed_runs(after)) == sorted(set(_committed_runs(after)))
    assert {p: after[p] for p in before} == before, "a finished run was trained again"
    tables = _tables(folder)
    assert sorted(tables["runs"]["run_id"]) == sorted(_committed_runs(after))
    assert tables["runs"]["run_id"].is_unique
    assert (tables["epochs"].groupby("run_id").size() == 4).all() and len(tables["epochs"]) == 6 * 4
    assert not os.path.exists(folder / ".lock")


def _one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("address", ["not an address", "head", "ray://", "host:99999", "http://head:8265"])
def test_malformed_address_is_one_line_and_writes_nothing(address, tmp_path, capsys):
    assert run.main(_argv(tmp_path, "bad", "--executor", "ray", "--ray-address", address)) == 2
    assert "is not a Ray address" in _one_error_line(capsys)
    assert not (tmp_path / "bad").exists()


def test_unreachable_address_fails_fast(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    assert run.main(_argv(tmp_path, "gone", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")) == 2
    assert time.monotonic() - t0 < 30
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in _one_error_line(capsys)
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("flags, message", [
    (["--ray-cpus-per-task", "0"], "--ray-cpus-per-task must be a number > 0"),
    (["--ray-gpus-per-task", "-1", "--device", "auto"], "--ray-gpus-per-task must be a number >= 0"),
    (["--ray-gpus-per-task", "1.5", "--device", "auto"], "above 1 must be a whole number"),
    (["--device", "cuda"], "needs --ray-gpus-per-task > 0"),
    (["--ray-gpus-per-task", "1"], "--device is cpu"),
])
def test_impossible_resources_are_one_line(flags, message, tmp_path, capsys):
    assert run.main(_argv(tmp_path, "res", "--executor", "ray", *flags)) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "res").exists()


def test_more_cpus_than_the_local_machine_is_one_line(tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    too_many = str(os.cpu_count() + 1)
    assert run.main(_argv(tmp_path, "cpus", "--executor", "ray", "--ray-cpus-per-task", too_many)) == 2
    assert f"--ray-cpus-per-task {too_many} is more than the" in _one_error_line(capsys)
    assert not (tmp_path / "cpus").exists()


def test_ray_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert run.main(_argv(tmp_path, "noray", "--executor", "ray")) == 2
    assert _one_error_line(capsys) == "error: --executor ray needs Ray: pip install -e '.[ray]'"
    assert not (tmp_path / "noray").exists()


def test_parse_address():
    from empirical.ray_executor import parse_address

    assert parse_address("auto") is None
    assert parse_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert parse_address("ray://head-node.cluster.local") == ("head-node.cluster.local", 10001)
    assert parse_address("ray://[::1]:10002") == ("::1", 10002)
    with pytest.raises(ConfigError):
        parse_address("head-node")
