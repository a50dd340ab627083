"""The batched engine: equal to training each run alone, deterministic, robust to divergence, resumable."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from empirical import config as C
from empirical.data import DataSpec, load
from empirical.models import compile_expr, torch_activation
from empirical.results import Lock, ResultsError, group_id
from empirical.run import main
from empirical.study import run_study
from empirical.tasks import plan
from empirical.train import train_group
from theory import activations as registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIME_COLS = ["time_per_epoch_s", "group_time_per_epoch_s", "act_time_per_epoch_s", "epoch_time_s"]


@pytest.fixture(scope="module")
def digits():
    return load(DataSpec("digits"))


def tiny(**kw) -> C.StudyConfig:
    base = dict(name="t", activations=("relu", "tanh"), seeds=(1,), widths=(16, 16), epochs=2, probe_every=5,
                probe_size=64, time_activations=False)
    base.update(kw)
    return C.validate(dataclasses.replace(C.StudyConfig(), **base))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "mish", "hardtanh",
                                  "sigmoid", "tanh", "telu"])
def test_compiled_expression_equals_native_op(name):
    act = registry.get(name)
    z = torch.linspace(-6, 6, 2001, dtype=torch.float64, requires_grad=True)
    native, compiled = torch_activation(act), torch_activation(act, native=False)
    a, b = native(z), compiled(z)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    ga, = torch.autograd.grad(a.sum(), z)
    gb, = torch.autograd.grad(b.sum(), z)
    mask = torch.ones_like(z, dtype=torch.bool)
    for p in act.breakpoints():
        mask &= (z - p).abs() > 1e-6
    torch.testing.assert_close(ga[mask], gb[mask], rtol=1e-9, atol=1e-12)


def test_user_formula_compiles():
    act = registry.register_formula("where(x < 0, 0.2*x, x) + erf(x)/2")
    z = torch.linspace(-3, 3, 101, dtype=torch.float64)
    expected = torch.where(z < 0, 0.2 * z, z) + torch.erf(z) / 2
    torch.testing.assert_close(compile_expr(act.expr)(z), expected)
    identity = registry.lookup("x")
    assert identity.user and identity.breakpoints() == ()
    torch.testing.assert_close(compile_expr(identity.expr)(z), z)


@pytest.mark.parametrize("model", ["mlp", "tinyvgg"])
def test_batched_equals_each_run_alone(digits, model):
    cfg = tiny(activations=("relu", "tanh", "x*erf(x)"), inits=("default", "he"), models=(model,), epochs=1,
               channels=4)
    _, (task,) = plan(cfg)
    together = {r.config.run_id: r for r in train_group(task.runs, digits, time_activations=False)}
    assert len(together) == 6
    for run in task.runs:
        (alone,) = train_group([run], digits, time_activations=False)
        both = together[run.run_id]
        a = torch.tensor([s["loss"] for s in alone.steps])
        b = torch.tensor([s["loss"] for s in both.steps])
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-6)
        assert alone.epochs[-1]["test_acc"] == pytest.approx(both.epochs[-1]["test_acc"], abs=1 / 449 + 1e-9)
        la = {(r["step"], r["layer"], r["metric"]): r["value"] for r in alone.layers}
        lb = {(r["step"], r["layer"], r["metric"]): r["value"] for r in both.layers}
        assert la.keys() == lb.keys()
        for k in la:
            if la[k] is not None:
                assert lb[k] == pytest.approx(la[k], rel=1e-3, abs=1e-6), k


def test_tinyvgg_trains_one_block_at_a_time_on_a_cpu(digits, monkeypatch):
    """The CPU step of TinyVGG is ``backward_by_block`` (each run as alone); the MLP's stays one batched graph."""
    from empirical.models import StackedModel

    calls = []
    by_block = StackedModel.backward_by_block
    monkeypatch.setattr(StackedModel, "backward_by_block",
                        lambda self, *a: calls.append(self.arch.model) or by_block(self, *a))
    for model in ("tinyvgg", "mlp"):
        _, (task,) = plan(tiny(models=(model,), epochs=1, channels=4))
        train_group(task.runs, digits, time_activations=False)
    assert calls == ["tinyvgg"] * math.ceil(len(digits.x_train) / C.StudyConfig().batch_size)


def test_seeds_in_one_program_equal_each_seed_alone(digits):
    """Merged seeds: each run keeps its own seed's batches and probe batch, so it equals its per-seed group."""
    cfg = tiny(activations=("relu", "tanh"), seeds=(1, 2, 3), epochs=1, probe_every=4)
    _, per_seed = plan(cfg)
    _, (merged,) = plan(cfg, merge_seeds=True)
    assert len(per_seed) == 3 and len(merged.runs) == 6
    together = {r.config.run_id: r for r in train_group(merged.runs, digits, time_activations=False)}
    for task in per_seed:
        for alone in train_group(task.runs, digits, time_activations=False):
            both = together[alone.config.run_id]
            torch.testing.assert_close(torch.tensor([s["loss"] for s in both.steps]),
                                       torch.tensor([s["loss"] for s in alone.steps]), rtol=1e-5, atol=1e-6)
            la = {(r["step"], r["layer"], r["metric"]): r["value"] for r in alone.layers}
            lb = {(r["step"], r["layer"], r["metric"]): r["value"] for r in both.layers}
            assert la.keys() == lb.keys()
            for k, v in la.items():
                if v is not None:
                    assert lb[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def test_plan_merges_seeds_only_when_the_data_do_not_depend_on_them():
    assert len(plan(tiny(seeds=(1, 2)), merge_seeds=True)[1]) == 1
    assert len(plan(tiny(seeds=(1, 2), train_size=100), merge_seeds=True)[1]) == 2
    assert len(plan(tiny(seeds=(1, 2), train_size=100, subset_seed=0), merge_seeds=True)[1]) == 1
    assert len(plan(tiny(seeds=(1, 2)))[1]) == 2


def test_runs_differ_by_activation_and_seed_gives_same_batches(digits):
    cfg = tiny(activations=("relu", "sigmoid"))
    _, (task,) = plan(cfg)
    recs = train_group(task.runs, digits, time_activations=False)
    assert recs[0].steps[0]["loss"] != recs[1].steps[0]["loss"]


def _csvs(folder):
    return {t: pd.read_csv(os.path.join(folder, f"{t}.csv")) for t in ("runs", "epochs", "steps", "layers")}


def test_study_writes_tidy_csvs_and_is_deterministic(tmp_path):
    cfg = tiny(out_dir=str(tmp_path / "a"))
    out = run_study(cfg, progress=False, log=lambda m: None)
    t1 = _csvs(out.folder)
    assert len(t1["runs"]) == 2 and set(t1["runs"].status) == {"finished"}
    assert len(t1["epochs"]) == 2 * 2
    assert {"run_id", "step", "layer", "metric", "value"} <= set(t1["layers"].columns)
    assert t1["steps"].groupby("run_id").size().tolist() == [2 * 11] * 2
    out2 = run_study(dataclasses.replace(cfg, out_dir=str(tmp_path / "b")), progress=False, log=lambda m: None)
    t2 = _csvs(out2.folder)
    for t in ("runs", "epochs", "steps", "layers"):
        a, b = t1[t].drop(columns=TIME_COLS, errors="ignore"), t2[t].drop(columns=TIME_COLS, errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    for t in ("steps", "layers"):
        assert (tmp_path / "a" / "t" / f"{t}.csv").read_bytes() == (tmp_path / "b" / "t" / f"{t}.csv").read_bytes()


def test_diverging_run_is_recorded_and_the_rest_completes(tmp_path):
    cfg = tiny(activations=("relu", "sigmoid"), optimizer="sgd", lr=1e4, epochs=2, out_dir=str(tmp_path))
    out = run_study(cfg, progress=False, log=lambda m: None)
    runs = pd.read_csv(os.path.join(out.folder, "runs.csv"))
    relu = runs[runs.activation == "relu"].iloc[0]
    assert relu.status == "diverged" and relu.diverged_step >= 1
    steps = pd.read_csv(os.path.join(out.folder, "steps.csv"))
    rs = steps[steps.run_id == relu.run_id]
    assert rs[rs.step < relu.diverged_step].loss.notna().all()
    assert pd.isna(rs[rs.step == relu.diverged_step].loss).all()
    sig = runs[runs.activation == "sigmoid"].iloc[0]
    assert sig.status in ("finished", "diverged")
    assert len(runs) == 2


def test_resume_skips_finished_groups(tmp_path):
    cfg = tiny(seeds=(1, 2), out_dir=str(tmp_path))
    out = run_study(cfg, progress=False, log=lambda m: None)
    parts = os.path.join(out.folder, "parts")
    groups = json.loads(open(os.path.join(out.folder, "study.json")).read())["groups"]
    assert sorted(map(sorted, groups)) == sorted(sorted(r.run_id for r in t.runs) for t in plan(cfg, merge_seeds=True)[1])
    gids = sorted(os.listdir(parts))
    assert gids == sorted(group_id(g) for g in groups)
    stamps = {i: os.stat(os.path.join(parts, i, "manifest.json")).st_mtime_ns for i in gids}
    before = open(os.path.join(out.folder, "layers.csv"), "rb").read()
    victim = gids[0]
    import shutil
    shutil.rmtree(os.path.join(parts, victim))
    out2 = run_study(cfg, progress=False, log=lambda m: None)
    n_victim = len(next(g for g in groups if group_id(g) == victim))
    assert out2.trained == n_victim and out2.skipped == 4 - n_victim
    for i in gids:
        if i != victim:
            assert os.stat(os.path.join(parts, i, "manifest.json")).st_mtime_ns == stamps[i]
    runs = pd.read_csv(os.path.join(out.folder, "runs.csv"))
    assert sorted(runs.run_id) == sorted(r.run_id for r in cfg.runs())
    assert open(os.path.join(out.folder, "layers.csv"), "rb").read() == before


def test_corrupted_part_is_detected(tmp_path):
    cfg = tiny(out_dir=str(tmp_path))
    out = run_study(cfg, progress=False, log=lambda m: None)
    rid = cfg.runs()[0].run_id
    (gid,) = os.listdir(os.path.join(out.folder, "parts"))
    with open(os.path.join(out.folder, "parts", gid, rid, "epochs.csv"), "a") as fh:
        fh.write("garbage\n")
    with pytest.raises(ResultsError, match=f"corrupted.*{gid}"):
        run_study(cfg, progress=False, log=lambda m: None)


def test_lock_refuses_second_writer(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
                               "os.write(fd, b'somehost 4242'); print('held', flush=True); time.sleep(60)",
                               str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ResultsError, match="in use by another study .process 4242 on somehost"):
            Lock(str(folder)).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = Lock(str(folder))  # the holder died: the OS released its lock, no takeover needed
    lock.acquire()
    assert lock.held
    lock.release()
    assert not (folder / ".lock").exists()


def test_cli_end_to_end(tmp_path, capsys):
    code = main(["--out-dir", str(tmp_path), "--name", "e2e", "--activation", "relu", "--activation", "sigmoid",
                 "--seeds", "3", "--epochs", "2", "--widths", "8", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "relu" in out and "sigmoid" in out and "±" in out
    info = json.loads((tmp_path / "e2e" / "study.json").read_text())
    assert info["status"] == "complete" and info["environment"]["torch"] == torch.__version__


def test_cli_bad_input_one_line(tmp_path, capsys):
    code = main(["--out-dir", str(tmp_path), "--activation", "rleu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "relu" in err
    assert not any(tmp_path.iterdir())


def test_hand_edited_table_is_kept_and_rebuilt(tmp_path):
    cfg = tiny(out_dir=str(tmp_path))
    out = run_study(cfg, progress=False, log=lambda m: None)
    runs_csv = os.path.join(out.folder, "runs.csv")
    original = open(runs_csv).read()
    with open(runs_csv, "w") as fh:
        fh.write(original[: len(original) // 2])
    messages = []
    run_study(cfg, progress=False, log=messages.append)
    assert any("changed since this program wrote it" in m for m in messages)
    assert open(runs_csv).read() == original
    assert open(runs_csv + ".edited").read() == original[: len(original) // 2]


def test_drawn_weights_follow_the_init_table_per_layer():
    """Unequal widths: every layer's sample Var(W)·fan_in and Var(b) match theory.init (Xavier differs per layer)."""
    from empirical.models import Arch, init_params, layer_sigmas
    from theory import init as init_table

    arch = Arch("mlp", (400,), 10, widths=(800, 100, 300))
    for scheme in ("xavier", "default", "critical"):
        params = init_params(arch, [("tanh", scheme, 3, 0.05)], dtype=torch.float64)
        table = layer_sigmas(arch, scheme, "tanh", 0.05)
        for l, (kind, fi, fo) in enumerate(arch.layers):
            w, b = params[2 * l][0].detach(), params[2 * l + 1][0].detach()
            sw2, sb2 = init_table.sigmas(scheme, fi, fo, act="tanh", sigma_b2=0.05)
            assert table[l] == (sw2, sb2)
            n = w.numel()
            assert float(w.var()) * fi == pytest.approx(sw2, rel=6 / math.sqrt(n))
            if sb2 > 0:
                assert float(b.var()) == pytest.approx(sb2, rel=6 / math.sqrt(len(b)) + 0.05)


def test_training_flushes_subnormals_only_inside_the_step(digits):
    """The step runs with subnormals flushed to zero (fast in deep nets whose gradients decay), the probes with
    them kept (a measured gradient of 1e-40 stays 1e-40), and the process is left as it was."""
    from empirical import train

    def product():
        return (torch.tensor([1e-30]) * torch.tensor([1e-10])).item()

    assert not train._flushing() and product() != 0.0
    with train.subnormals_flushed(torch.device("cpu")):
        assert product() == 0.0
        with train.subnormals_kept():
            assert product() != 0.0
        assert product() == 0.0
    assert not train._flushing()
    cfg = tiny()
    train_group(list(plan(cfg)[1][0].runs), digits)
    assert not train._flushing() and product() != 0.0


def _records(recs):
    return {r.config.run_id: ([s["loss"] for s in r.steps], r.epochs[-1]["test_loss"]) for r in recs}


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")),
                    reason="inductor compiles C++ on a CPU and no C++ compiler is on PATH")
def test_compiled_step_equals_the_eager_step(digits):
    """torch.compile (inductor) of the forward and loss: the same training to within float rounding."""
    cfg = tiny(activations=("relu", "tanh"), widths=(8,), epochs=1)
    runs = plan(cfg)[1][0].runs
    eager = _records(train_group(runs, digits, time_activations=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_compile = _records(train_group(runs, digits, time_activations=False, compile_step=True))
    assert not [w for w in caught if "torch.compile failed" in str(w.message)], "compiled nothing: fell back"
    assert eager.keys() == with_compile.keys()
    for k, (losses, test_loss) in eager.items():
        torch.testing.assert_close(torch.tensor(with_compile[k][0]), torch.tensor(losses), rtol=1e-4, atol=1e-6)
        assert with_compile[k][1] == pytest.approx(test_loss, rel=1e-4)


class _Refused(RuntimeError):
    pass


def _refusing_backend(gm, example_inputs):
    raise _Refused("this backend compiles nothing")


class _FailsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, g):
        raise _Refused("this backend's backward fails")


def _backward_failing_backend(gm, example_inputs):
    def run(*args):
        return tuple(_FailsInBackward.apply(o) if isinstance(o, torch.Tensor) and o.requires_grad else o
                     for o in gm(*args))
    return run


@pytest.mark.parametrize("backend", [_refusing_backend, _backward_failing_backend], ids=["compile", "backward"])
def test_a_failing_compile_falls_back_to_the_eager_step(digits, backend):
    """A compiler failure, in the forward or only in the backward, warns once and trains exactly as eager."""
    cfg = tiny(activations=("relu", "tanh"), widths=(8,), epochs=1)
    runs = plan(cfg)[1][0].runs
    eager = _records(train_group(runs, digits, time_activations=False))
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*training eagerly") as caught:
        fallback = _records(train_group(runs, digits, time_activations=False, compile_step=backend))
    assert sum("torch.compile failed" in str(w.message) for w in caught) == 1
    assert fallback == eager


def test_compile_flag_reaches_every_executor_and_is_validated(monkeypatch, tmp_path):
    """--compile sets the study's ``compile``, which run_task hands to train_group; a TOML non-boolean is refused."""
    from empirical import ray_executor, tasks
    from empirical.run import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args(["--compile"])).compile is True
    assert config_from_args(build_parser().parse_args([])).compile is False
    assert "torch.compile" in build_parser().format_help()
    seen = []
    monkeypatch.setattr(tasks, "train_group", lambda runs, data, device, **kw: seen.append(kw["compile_step"]) or [])
    monkeypatch.setattr(tasks, "load_data", lambda spec: None)
    cfg = tiny(compile=True)
    _, (task,) = plan(cfg)
    from empirical import executors

    monkeypatch.setattr(executors, "load_data", lambda spec: SimpleNamespace(x_train=torch.zeros(64)))
    monkeypatch.setattr(executors, "run_task", lambda *a, **kw: tasks.run_task(*a, **kw))
    executors.run_local(cfg, [task], commit=lambda recs: None, progress=False)
    ray_executor._work(task, None, "cpu", False, 1, True, cfg.compile)
    assert seen == [True, True]
    bad = tmp_path / "c.toml"
    bad.write_text('compile = "yes"\n')
    with pytest.raises(C.ConfigError, match="compile must be true or false"):
        C.validate(C.load_toml(str(bad)))
