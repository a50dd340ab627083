"""Sharpness probe: Lanczos on Hessian-vector products against explicit Hessians (numpy, torch.func)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from empirical import sharpness as S
from empirical.models import Arch, StackedModel, init_params, torch_activation
from theory import activations as registry


def _sym(rng, n, shift=0.0):
    a = rng.standard_normal((n, n))
    return (a + a.T) / 2 + shift * np.eye(n)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12), R=st.integers(1, 4))
def test_quadratic_top_eigenvalue_equals_numpy(seed, n, R):
    """L_r(x) = ½ xᵀA_r x split over two tensors: the probe returns numpy's largest eigenvalue of each A_r."""
    rng = np.random.default_rng(seed)
    mats = [_sym(rng, n) for _ in range(R)]
    A = torch.tensor(np.stack(mats))
    k = n // 2
    params = [torch.zeros(R, k, dtype=torch.float64), torch.zeros(R, n - k, dtype=torch.float64)]

    def loss(ps):
        x = torch.cat(ps, 1)
        return 0.5 * torch.einsum("ri,rij,rj->", x, A, x)

    got = S.lanczos_top(S.loss_hvp(loss, params), params, iters=n + 2)
    want = [np.linalg.eigvalsh(m)[-1] for m in mats]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-8, atol=1e-8)


def test_closed_krylov_space_is_exact():
    """A rank-one Hessian closes the Krylov space after one step; the value is still exact (no spurious zeros)."""
    u = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    A = -3.0 * u.T @ u / 9 - 0.5 * torch.eye(3, dtype=torch.float64)  # eigenvalues −3.5, −0.5, −0.5
    p = [torch.zeros(1, 3, dtype=torch.float64)]
    got = S.lanczos_top(S.loss_hvp(lambda ps: 0.5 * ps[0][0] @ A @ ps[0][0], p), p, iters=10)
    assert got.item() == pytest.approx(-0.5, abs=1e-10)


def _model(acts, seeds, widths=(6, 5)):
    arch = Arch("mlp", (4,), 3, widths)
    fns = [torch_activation(registry.lookup(a)) for a in acts]
    slices = [(i, i + 1) for i in range(len(acts))]
    params = init_params(arch, [(a, "he", s, 0.0) for a, s in zip(acts, seeds)], dtype=torch.float64)
    return StackedModel(arch, fns, slices), params


def _full_hessian(model, params, x, y, r):
    """The explicit Hessian of run r's loss (torch.func.hessian over its flattened parameters)."""
    shapes = [p[r].shape for p in params]
    sizes = [p[r].numel() for p in params]
    flat0 = torch.cat([p[r].detach().reshape(-1) for p in params])

    def f(flat):
        ps = [t.reshape(1, *s) for t, s in zip(flat.split(sizes), shapes)]
        one = StackedModel(model.arch, [model.act_fns[r]], [(0, 1)])
        logits, _ = one.forward(ps, x)
        return one.per_run_loss(logits, y).sum()

    return torch.func.hessian(f)(flat0).numpy()


def test_network_sharpness_matches_explicit_hessian_and_batched_equals_alone():
    acts, seeds = ["tanh", "gelu", "relu"], [3, 4, 5]
    model, params = _model(acts, seeds)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    n_par = sum(p[0].numel() for p in params)
    batched = S.measure(model, params, x, y, iters=n_par)["sharpness"]
    for r, (a, s) in enumerate(zip(acts, seeds)):
        want = np.linalg.eigvalsh(_full_hessian(model, params, x, y, r))[-1]
        assert batched[r].item() == pytest.approx(want, rel=1e-5)
        alone_model, alone_params = _model([a], [s])
        alone = S.measure(alone_model, alone_params, x, y, iters=n_par)["sharpness"]
        assert alone.item() == pytest.approx(batched[r].item(), rel=1e-5)


def test_adam_preconditioned_sharpness_matches_explicit():
    model, params = _model(["silu", "tanh"], [7, 8], widths=(5,))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(3):
        logits, _ = model.forward(params, x)
        opt.zero_grad()
        model.per_run_loss(logits, y).sum().backward()
        opt.step()
    n_par = sum(p[0].numel() for p in params)
    got = S.measure(model, params, x, y, opt=opt, iters=n_par)
    for r in range(2):
        H = _full_hessian(model, params, x, y, r)
        t = 3
        d = np.concatenate([((1 - 0.9 ** t) * ((opt.state[p]["exp_avg_sq"][r] / (1 - 0.999 ** t)).sqrt() + 1e-8))
                            .detach().reshape(-1).numpy() for p in params])
        want = np.max(np.linalg.eigvals(H / d[:, None]).real)
        assert got["preconditioned_sharpness"][r].item() == pytest.approx(want, rel=1e-4)


def test_no_preconditioned_sharpness_before_adams_first_step():
    model, params = _model(["tanh"], [1])
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.zeros(8, dtype=torch.long)
    opt = torch.optim.Adam(params, lr=1e-3)
    assert set(S.measure(model, params, x, y, opt=opt, iters=5)) == {"sharpness"}


def test_stability_thresholds():
    from empirical.analysis.claims.curvature import stability_threshold

    assert stability_threshold("sgd", 0.1) == pytest.approx(20.0)
    assert stability_threshold("sgd", 0.1, momentum=0.9) == pytest.approx(38.0)
    assert stability_threshold("adam", 1e-3) == pytest.approx(38_000.0)


def test_engine_records_sharpness_at_its_steps_and_keeps_run_ids():
    import dataclasses

    from empirical import config as C
    from empirical.data import DataSpec, load
    from empirical.train import train_group

    base = C.validate(dataclasses.replace(C.StudyConfig(), activations=("relu", "tanh"), seeds=(1,), widths=(8,),
                                          epochs=1, batch_size=128, probe_size=64, time_activations=False))
    on = C.validate(dataclasses.replace(base, sharpness_every=4, sharpness_iters=6))
    assert [r.run_id for r in base.runs()] == [dataclasses.replace(r, sharpness_every=0, sharpness_iters=20).run_id
                                               for r in on.runs()]
    assert {r.run_id for r in base.runs()}.isdisjoint(r.run_id for r in on.runs())
    data = load(DataSpec("digits", train_size=1000))
    recs = train_group(on.runs(), data, time_activations=False)
    steps = recs[0].row["steps"]
    for rec in recs:
        sh = [(row["step"], row["value"]) for row in rec.layers if row["metric"] == "sharpness"]
        assert [s for s, _ in sh] == sorted({0, *range(4, steps, 4), steps})
        assert all(v is not None and v > 0 for _, v in sh)
        assert all(row["layer"] == 0 for row in rec.layers if row["metric"] == "preconditioned_sharpness")
        assert {row["step"] for row in rec.layers if row["metric"] == "preconditioned_sharpness"} == {s for s, _ in sh} - {0}
    plain = train_group(base.runs(), data, time_activations=False)
    assert [r.row["final_train_loss"] for r in plain] == [r.row["final_train_loss"] for r in recs]
