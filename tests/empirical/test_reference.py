"""The engine against plain PyTorch, micrograd-style: the same weights and batch order through nn.Sequential /
nn.Conv2d and torch.optim (Adam, SGD) must give the same per-step losses and final weights (to float32
rounding), and every probe metric must equal what autograd hooks measure on the reference model."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from empirical import probes, train
from empirical.config import RunConfig
from empirical.models import Arch, StackedModel, init_params, torch_activation
from theory import activations as registry

N_TRAIN, N_TEST, CLASSES = 96, 32, 5
# name in the registry (or a formula the engine compiles) → an independent torch implementation
REFERENCE_ACTS = {"relu": torch.relu, "tanh": torch.tanh, "x/(1+abs(x))": lambda x: x / (1 + x.abs())}


def _data(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_TRAIN + N_TEST, *shape, generator=g)
    y = torch.randint(0, CLASSES, (N_TRAIN + N_TEST,), generator=g)
    return SimpleNamespace(x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_test=x[N_TRAIN:], y_test=y[N_TRAIN:],
                           input_shape=shape, num_classes=CLASSES)


class _Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _reference(arch: Arch, params, r: int, fn) -> nn.Sequential:
    """nn.Sequential of run r with the engine's initial weights (engine stores linear W as [fan_in, fan_out])."""
    mods = []
    if arch.model == "mlp":
        mods.append(nn.Flatten())
        for i, (_, fi, fo) in enumerate(arch.layers):
            lin = nn.Linear(fi, fo)
            with torch.no_grad():
                lin.weight.copy_(params[2 * i][r].T)
                lin.bias.copy_(params[2 * i + 1][r])
            mods += [lin] + ([_Act(fn)] if i < len(arch.layers) - 1 else [])
        return nn.Sequential(*mods)
    for i, (_, ci, co) in enumerate(arch.layers[:4]):
        conv = nn.Conv2d(ci, co, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(params[2 * i][r])
            conv.bias.copy_(params[2 * i + 1][r])
        mods += [conv, _Act(fn)] + ([nn.MaxPool2d(2)] if i in (1, 3) else [])
    _, fi, fo = arch.layers[4]
    lin = nn.Linear(fi, fo)
    with torch.no_grad():
        lin.weight.copy_(params[8][r].T)
        lin.bias.copy_(params[9][r])
    return nn.Sequential(*mods, nn.Flatten(), lin)


def _weights(net: nn.Sequential) -> list[torch.Tensor]:
    """Parameters in the engine's layout: linear W as [fan_in, fan_out]."""
    out = []
    for m in net:
        if isinstance(m, nn.Linear):
            out += [m.weight.detach().T, m.bias.detach()]
        elif isinstance(m, nn.Conv2d):
            out += [m.weight.detach(), m.bias.detach()]
    return out


CASES = [
    pytest.param("mlp", (12,), ("relu", "x/(1+abs(x))"), "adam", id="mlp-adam-native-and-compiled"),
    pytest.param("mlp", (12,), ("tanh", "relu"), "sgd", id="mlp-sgd"),
    pytest.param("tinyvgg", (1, 8, 8), ("relu", "tanh"), "adam", id="tinyvgg-adam"),
]


@pytest.mark.parametrize("model,shape,acts,optimizer", CASES)
def test_engine_equals_plain_pytorch(model, shape, acts, optimizer, monkeypatch):
    data = _data(shape)
    runs = [RunConfig(activation=a, seed=7, init="he" if i else "xavier", model=model, widths=(20, 16, 24),
                      channels=3, optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.1, momentum=0.5,
                      batch_size=32, epochs=2, probe_every=10**6, probe_size=N_TRAIN)
            for i, a in enumerate(acts)]
    captured = {}
    make_optimizer = train.make_optimizer

    def capture(params, cfg):
        captured["params"] = params
        return make_optimizer(params, cfg)

    monkeypatch.setattr(train, "make_optimizer", capture)
    records = train.train_group(runs, data, time_activations=False)
    engine_params = captured["params"]
    arch = Arch(model, shape, CLASSES, (20, 16, 24), 3)

    for r, rec in enumerate(records):
        cfg = rec.config
        init = init_params(arch, [(cfg.activation, cfg.init, cfg.seed, cfg.sigma_b2, cfg.sigma_w2)])
        net = _reference(arch, init, 0, REFERENCE_ACTS[cfg.activation])
        opt = (torch.optim.Adam(net.parameters(), lr=cfg.lr, foreach=False) if optimizer == "adam" else
               torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, foreach=False))
        gen = torch.Generator().manual_seed(cfg.seed)
        losses = []
        for _ in range(cfg.epochs):
            perm = torch.randperm(N_TRAIN, generator=gen)
            for s in range(math.ceil(N_TRAIN / cfg.batch_size)):
                idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        engine_losses = [row["loss"] for row in rec.steps]
        assert engine_losses == pytest.approx(losses, rel=2e-5, abs=1e-6)
        for got, want in zip(engine_params, _weights(net)):      # records come in the stacked order
            assert torch.allclose(got[r].detach(), want, rtol=1e-4, atol=2e-6), (cfg.activation, got.shape)


def _hooked(net: nn.Sequential, x, y, eps, fn):
    """Every probe metric of a reference model measured with forward hooks and autograd."""
    zs, hs = [], []
    layers = [m for m in net if isinstance(m, (nn.Linear, nn.Conv2d))]
    acts = [m for m in net if isinstance(m, _Act)]
    handles = [m.register_forward_hook(lambda m, i, o: zs.append(o)) for m in layers[:-1]]
    handles += [m.register_forward_hook(lambda m, i, o: hs.append(o)) for m in acts]
    logits = net(x)
    for h in handles:
        h.remove()
    for t in zs + hs:
        t.retain_grad()
    logits.retain_grad()
    nn.functional.cross_entropy(logits, y).backward()
    out = {m: {} for m in probes.METRICS + probes.DIST_METRICS}
    out["preact_q"][0] = (x ** 2).mean()
    for l, mod in enumerate(layers, 1):
        out["weight_grad_norm"][l] = mod.weight.grad.norm()
        out["mean_abs_grad"][l] = mod.weight.grad.abs().mean()
        _np_quantiles(out, probes.WGRAD_QUANTILES, l, mod.weight.grad.abs())
        if isinstance(mod, nn.Linear) and all(isinstance(m, nn.Linear) for m in layers):
            out["weight_spectral_norm"][l] = torch.linalg.matrix_norm(mod.weight.detach(), 2)
        z = logits if l == len(layers) else zs[l - 1]
        out["grad_norm_z"][l] = z.grad.norm()
        out["preact_q"][l] = (z ** 2).mean()
        out["preact_var"][l] = z.var(unbiased=False)
        if l == len(layers):
            continue
        h = hs[l - 1]
        out["grad_norm_h"][l] = h.grad.norm()
        unit_axes = (0,) if h.dim() == 2 else (0, 2, 3)
        out["dead_frac"][l] = (h == 0).all(dim=unit_axes[0]).float().mean() if h.dim() == 2 else \
            (h == 0).permute(1, 0, 2, 3).flatten(1).all(dim=1).float().mean()
        zz = z.detach().clone().requires_grad_(True)
        (d,) = torch.autograd.grad(fn(zz).sum(), zz)
        out["saturated_frac"][l] = (d.abs() < eps).float().mean()
        _np_quantiles(out, probes.ACT_QUANTILES, l, h)
    return out


def _np_quantiles(out, names, layer, t):
    """numpy's quantiles (linear interpolation) of the entries of t, in float64."""
    values = np.quantile(t.detach().double().numpy().ravel(), [0.05, 0.25, 0.5, 0.75, 0.95])
    for name, v in zip(names, values):
        out[name][layer] = torch.tensor(v)


@pytest.mark.parametrize("model,shape", [("mlp", (12,)), ("tinyvgg", (1, 8, 8))])
def test_every_probe_metric_equals_autograd_hooks(model, shape):
    data = _data(shape, seed=1)
    acts = ["relu", "tanh", "x/(1+abs(x))"]
    arch = Arch(model, shape, CLASSES, (20, 16, 24), 3)
    params = init_params(arch, [(a, "default", 3, 0.0) for a in acts])
    # relu's first unit (channel) gets a large negative bias: dead on the whole batch
    with torch.no_grad():
        params[1][0, 0] -= 100.0
    fns = [torch_activation(registry.lookup(a)) for a in acts]
    engine = StackedModel(arch, fns, [(0, 1), (1, 2), (2, 3)])
    x, y = data.x_train, data.y_train
    got = probes.probe(engine, params, x, y, eps=0.05, distributions=True)
    params = [p.detach() for p in params]
    for r, a in enumerate(acts):
        want = _hooked(_reference(arch, params, r, REFERENCE_ACTS[a]), x, y, 0.05, REFERENCE_ACTS[a])
        for metric in probes.METRICS + probes.DIST_METRICS:
            assert set(got[metric]) == set(want[metric]), (metric, a)
            for layer, v in want[metric].items():
                assert float(got[metric][layer][r].detach()) == pytest.approx(float(v.detach()), rel=1e-4, abs=1e-7), \
                    (model, a, metric, layer)
    assert float(got["dead_frac"][1][0]) > 0          # the dead-unit path was exercised
