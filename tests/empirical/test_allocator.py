"""The allocator policy of training (``empirical.allocator``): freed memory kept between steps, returned around
probes and evaluations, and no effect on any number."""
from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys

import pytest
import torch

from empirical import allocator, probes, train
from empirical import config as C
from empirical.data import DataSpec, load
from empirical.tasks import plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
glibc = pytest.mark.skipif(not allocator.available(), reason="needs Linux with glibc and no MALLOC_*_ variables")
MB64 = 64 * 2 ** 20


def faults_of_refill() -> int:
    """Minor page faults of writing a fresh 64 MiB tensor just after an equal one was written and freed."""
    t = torch.empty(MB64 // 4)
    t.fill_(1.0)
    del t
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(MB64 // 4)
    t.fill_(2.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_kept_memory_is_reused_without_faulting_it_in_and_returned_memory_is_not():
    pages = MB64 // resource.getpagesize()
    with allocator.kept():
        assert allocator.mode() == "kept"
        kept = faults_of_refill()
        with allocator.returned():
            assert allocator.mode() == "returned"
            returned = faults_of_refill()
        assert allocator.mode() == "kept"
    assert allocator.mode() is None
    assert kept < pages // 10 and returned > pages // 2, (kept, returned, pages)


def test_a_process_tuned_by_malloc_variables_is_left_alone():
    code = "from empirical import allocator; print(allocator.available())"
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-500:]


def test_steps_keep_memory_probes_and_evaluations_return_it_and_numbers_do_not_change(monkeypatch):
    digits = load(DataSpec("digits"))
    cfg = C.validate(dataclasses.replace(C.StudyConfig(), name="t", activations=("relu", "tanh"), seeds=(1,),
                                         models=("tinyvgg",), channels=4, epochs=2, probe_every=5, probe_size=64,
                                         time_activations=False))
    _, (task,) = plan(cfg)
    seen = {"step": set(), "probe": set(), "evaluate": set()}
    for name, mod, key in (("probe", probes, "probe"), ("evaluate", train, "evaluate")):
        fn = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, fn=fn, key=key, **k: seen[key].add(allocator.mode()) or fn(*a, **k))
    opt_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: seen["step"].add(allocator.mode())
                        or opt_step(self, *a, **k))
    with_policy = train.train_group(task.runs, digits, time_activations=False)
    if allocator.available():
        assert seen == {"step": {"kept"}, "probe": {"returned"}, "evaluate": {"returned"}}
    monkeypatch.setattr(allocator, "_MALLOPT", None)
    without = train.train_group(task.runs, digits, time_activations=False)
    for a, b in zip(with_policy, without):
        assert [s["loss"] for s in a.steps] == [s["loss"] for s in b.steps]
        assert [(r["metric"], r["value"]) for r in a.layers] == [(r["metric"], r["value"]) for r in b.layers]
