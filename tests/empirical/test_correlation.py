"""Correlation propagation at initialisation against closed forms, and the per-run σ_w² of the engine."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from empirical import config as C
from empirical.correlation import input_pairs, measure_activation
from empirical.data import DataSpec, load
from empirical.models import init_params, Arch
from empirical.tasks import plan
from empirical.train import train_group

WIDTH, SEEDS, DEPTH = 1024, (1, 2, 3), 8
C_TOL, Q_RTOL = 0.03, 0.08   # met at width 1024, 3 seeds × 8 pairs (finite width: O(1/√(n·pairs·seeds)))


def _means(rows):
    d = pd.DataFrame(rows).groupby(["sigma_w2", "c0", "layer"])[["q", "c"]].mean().reset_index()
    return {key: g.sort_values("layer") for key, g in d.groupby(["sigma_w2", "c0"])}


@settings(max_examples=4, deadline=None)
@given(c0=st.floats(-0.9, 0.95), n=st.integers(2, 64), pairs=st.integers(1, 4))
def test_input_pairs_have_the_asked_correlation(c0, n, pairs):
    xa, xb = input_pairs(c0, n, pairs, torch.Generator().manual_seed(0))
    torch.testing.assert_close((xa * xa).mean(1), torch.ones(pairs, dtype=torch.float64))
    torch.testing.assert_close((xb * xb).mean(1), torch.ones(pairs, dtype=torch.float64))
    torch.testing.assert_close((xa * xb).mean(1), torch.full((pairs,), c0, dtype=torch.float64))


@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate])  # ~1 s per example: no shrinking
@given(sw2=st.floats(0.5, 1.5), sb2=st.floats(0.0, 0.3), c0=st.floats(0.0, 0.95))
def test_linear_network_follows_the_exact_covariance_recursion(sw2, sb2, c0):
    """φ = identity: q_{l+1} = σ_w² q_l + σ_b² and k_{l+1} = σ_w² k_l + σ_b² exactly, c_l = k_l / q_l."""
    rows = measure_activation("x", [sw2], sb2, [c0], DEPTH, WIDTH, SEEDS)
    (g,) = _means(rows).values()
    q, k = sw2 + sb2, sw2 * c0 + sb2
    exp_q, exp_c = [], []
    for _ in range(DEPTH):
        exp_q.append(q), exp_c.append(k / q)
        q, k = sw2 * q + sb2, sw2 * k + sb2
    np.testing.assert_allclose(g["c"].to_numpy(), exp_c, atol=C_TOL)
    np.testing.assert_allclose(g["q"].to_numpy(), exp_q, rtol=Q_RTOL)


@pytest.mark.parametrize("c0", [0.0, 0.5, 0.9])
def test_relu_at_zero_bias_follows_the_arccosine_kernel(c0):
    """ReLU, σ_b² = 0 (Cho & Saul 2009): c ↦ (√(1 − c²) + (π − arccos c) c) / π, whatever σ_w²; q_l = q_1 at σ_w² = 2."""
    rows = measure_activation("relu", [2.0], 0.0, [c0], DEPTH, WIDTH, SEEDS)
    (g,) = _means(rows).values()
    c, exp = c0, []
    for _ in range(DEPTH):
        exp.append(c)
        c = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    np.testing.assert_allclose(g["c"].to_numpy(), exp, atol=C_TOL)
    np.testing.assert_allclose(g["q"].to_numpy()[:3], 2.0, rtol=Q_RTOL)


def test_a_wrong_map_is_caught():
    """The tolerance is tight enough to tell ReLU's arc-cosine map from the identity's (c constant)."""
    rows = measure_activation("relu", [2.0], 0.0, [0.0], DEPTH, WIDTH, SEEDS)
    (g,) = _means(rows).values()
    assert abs(g["c"].to_numpy()[-1] - 0.0) > 10 * C_TOL


# ----------------------------------------------------------------------------- per-run σ_w²

def test_gaussian_init_draws_the_runs_own_sigma_w2():
    arch = Arch("mlp", (400,), 10, (400, 400))
    params = init_params(arch, [("tanh", "gaussian", 3, 0.05, 1.0), ("tanh", "gaussian", 3, 0.05, 4.0)],
                         dtype=torch.float64)
    w = params[2].detach()
    assert float(w[0].var() * 400) == pytest.approx(1.0, rel=0.02)
    torch.testing.assert_close(w[1], 2.0 * w[0])           # same seed: the same draws, scaled by √(4/1)
    assert float(params[3].detach().var()) == pytest.approx(0.05, rel=0.3)


def test_run_ids_without_sigma_w2_are_unchanged():
    import hashlib
    import json

    r = C.RunConfig()
    d = dataclasses.asdict(r)
    for k in C._LATER:          # fields added after results were shipped (sigma_w2, sharpness_*), at defaults
        d.pop(k)
    assert r.run_id == hashlib.sha1(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:12]
    assert r.run_id == "a51154a93787"                                     # the shipped default relu/42 run
    assert dataclasses.replace(r, init="gaussian", sigma_w2=1.5).run_id != r.run_id


def test_trainability_grid_plans_one_program_per_depth_and_seed():
    cfg = C.validate(dataclasses.replace(C.preset("trainability"), depths=(3, 5), sigma_w2s=(1.0, 1.75, 3.0),
                                         seeds=(1, 2)))
    runs, tasks = plan(cfg)
    assert len(runs) == 2 * 3 * 2 * len(cfg.activations)
    assert len(tasks) <= 2 * 2
    for t in tasks:
        assert len({r.depth for r in t.runs}) == 1
        assert {r.sigma_w2 for r in t.runs} == {1.0, 1.75, 3.0}


@pytest.mark.parametrize("bad", [dict(inits=("gaussian",), sigma_w2s=()), dict(sigma_w2s=(1.0,)),
                                 dict(inits=("gaussian",), sigma_w2s=(1.0, -2.0)),
                                 dict(inits=("gaussian",), sigma_w2s=(1.0,), depths=(0,))])
def test_bad_sigma_w2_grids_are_refused(bad):
    with pytest.raises(C.ConfigError):
        C.validate(dataclasses.replace(C.StudyConfig(), **bad))


def test_batched_trainability_runs_equal_the_same_runs_alone():
    data = load(DataSpec("mnist1d", train_size=256, seed=1))
    cfg = C.validate(dataclasses.replace(
        C.preset("trainability"), activations=("tanh", "relu"), depths=(6,), sigma_w2s=(1.0, 1.75, 3.0),
        seeds=(1,), epochs=1, train_size=256))
    _, (task,) = plan(cfg)
    together = {r.config.run_id: r for r in train_group(task.runs, data, time_activations=False)}
    assert len(together) == 6
    for run in task.runs:
        (alone,) = train_group([run], data, time_activations=False)
        both = together[run.run_id]
        assert alone.row["sigma_w2"] == both.row["sigma_w2"] == run.sigma_w2
        a = torch.tensor([s["loss"] for s in alone.steps])
        b = torch.tensor([s["loss"] for s in both.steps])
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-6)
