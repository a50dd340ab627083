"""Batched equals alone, for every model family and convolution strategy, against plain PyTorch.

The reference is independent of the engine: one ``nn.Sequential`` per run (nn.Linear / nn.Conv2d, the
same initial weights), trained with ``torch.optim.Adam`` (single-tensor, not fused) on the same batches.
In float64 the stacked program must match it to ~1e-12; in float32 a run trained in a group must match
the same run trained alone to float32 rounding.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from empirical import probes
from empirical.config import RunConfig
from empirical.models import Arch, StackedModel, init_params, torch_activation
from empirical.train import _order, make_optimizer
from theory import activations as registry

FAMILIES = {
    "mlp": Arch("mlp", (1, 8, 8), 10, widths=(32, 16)),
    "deep-narrow": Arch("mlp", (1, 8, 8), 10, widths=(16,) * 50),
    "tinyvgg-1ch": Arch("tinyvgg", (1, 8, 8), 10, channels=4),
    "tinyvgg-3ch": Arch("tinyvgg", (3, 8, 8), 10, channels=3),
}
# mixed activations (native, compiled from a formula) and inits in one group
RUNS = [("relu", "default", 1), ("tanh", "xavier", 2), ("relu", "he", 3), ("x*erf(x)", "default", 4),
        ("gelu", "lecun", 5), ("tanh", "default", 6)]
STEPS, BATCH, LR = 3, 16, 1e-2
# the convolution strategy only concerns TinyVGG
CASES = [(f, c) for f, a in FAMILIES.items() for c in (("loop", "grouped") if a.model == "tinyvgg" else ("loop",))]


def _group(runs, arch, conv, dtype):
    cfgs = [RunConfig(activation=a, init=i, seed=s) for a, i, s in runs]
    ordered, acts, slices = _order(cfgs)
    fns = [torch_activation(registry.lookup(a)) for a in acts]
    model = StackedModel(arch, fns, slices, conv)
    params = init_params(arch, [(r.activation, r.init, r.seed, r.sigma_b2) for r in ordered], dtype=dtype)
    return [(r.activation, r.init, r.seed) for r in ordered], model, params


def _data(arch, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * BATCH, *arch.input_shape, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randint(0, arch.num_classes, (STEPS * BATCH,), generator=g)
    return x, y


def _train_engine(model, params, x, y):
    opt = make_optimizer(params, RunConfig(lr=LR))
    for s in range(STEPS):
        xb, yb = x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH]
        logits, _ = model.forward(params, xb)
        opt.zero_grad(set_to_none=True)
        model.per_run_loss(logits, yb).sum().backward()
        opt.step()
    return [p.detach() for p in params]


class _Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, t):
        return self.fn(t)


def _reference(arch, act, params, r) -> nn.Sequential:
    """Run ``r`` of the stacked ``params`` as a plain nn.Sequential."""
    fn = torch_activation(registry.lookup(act))
    layers: list[nn.Module] = [nn.Flatten()] if arch.model == "mlp" else []
    for i, (kind, fan_in, fan_out) in enumerate(arch.layers):
        W, b = params[2 * i][r].detach(), params[2 * i + 1][r].detach()
        if kind == "linear":
            if arch.model != "mlp" and i == len(arch.layers) - 1:
                layers.append(nn.Flatten())
            m = nn.Linear(fan_in, fan_out, dtype=W.dtype)
            m.weight.data.copy_(W.T), m.bias.data.copy_(b)
        else:
            m = nn.Conv2d(fan_in, fan_out, 3, padding=1, dtype=W.dtype)
            m.weight.data.copy_(W), m.bias.data.copy_(b)
        layers.append(m)
        if i < len(arch.layers) - 1:
            layers.append(_Act(fn))
            if kind == "conv" and i in (1, 3):
                layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def _train_reference(ref, x, y):
    opt = torch.optim.Adam(ref.parameters(), lr=LR, foreach=False, fused=False)
    for s in range(STEPS):
        xb, yb = x[s * BATCH:(s + 1) * BATCH], y[s * BATCH:(s + 1) * BATCH]
        opt.zero_grad()
        nn.functional.cross_entropy(ref(xb), yb).backward()
        opt.step()
    return ref


def _ref_params(arch, ref):
    out = []
    for m in ref:
        if isinstance(m, nn.Linear):
            out += [m.weight.detach().T, m.bias.detach()]
        elif isinstance(m, nn.Conv2d):
            out += [m.weight.detach(), m.bias.detach()]
    return out


@pytest.mark.parametrize("family, conv", CASES)
def test_float64_batched_equals_plain_pytorch_per_run(family, conv):
    arch = FAMILIES[family]
    order, model, params = _group(RUNS, arch, conv, torch.float64)
    refs = [_reference(arch, act, params, r) for r, (act, _, _) in enumerate(order)]
    x, y = _data(arch, torch.float64)
    trained = _train_engine(model, params, x, y)
    for r, ref in enumerate(refs):
        expected = _ref_params(arch, _train_reference(ref, x, y))
        for got, want in zip(trained, expected):
            torch.testing.assert_close(got[r], want, rtol=1e-12, atol=1e-13, msg=lambda m: f"{order[r]}: {m}")


@pytest.mark.parametrize("family, conv", CASES)
def test_float32_batched_equals_alone(family, conv):
    arch = FAMILIES[family]
    order, model, params = _group(RUNS, arch, conv, torch.float32)
    x, y = _data(arch, torch.float32)
    together = _train_engine(model, params, x, y)
    for r, run in enumerate(order):
        _, m1, p1 = _group([run], arch, conv, torch.float32)
        alone = _train_engine(m1, p1, x, y)
        for got, want in zip(together, alone):
            # float32 rounding: a handful of ulps of the largest entries after STEPS Adam steps
            torch.testing.assert_close(got[r], want[0], rtol=1e-5, atol=1e-6, msg=lambda m: f"{run}: {m}")


@pytest.mark.parametrize("family", ["tinyvgg-1ch", "tinyvgg-3ch", "tinyvgg-cifar"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-batch", "batch-per-run"])
def test_training_block_by_block_gives_each_run_its_gradients_alone(family, shared):
    """``backward_by_block``, TinyVGG's training step on a CPU: per run, the logits, loss and gradients of the same
    run alone, bit for bit, and the whole graph's to float32 rounding (it batches the classifier over the runs,
    which on 3x32x32 with 16 channels rounds differently from a run's own matmul)."""
    arch = FAMILIES[family] if family in FAMILIES else Arch("tinyvgg", (3, 32, 32), 10, channels=16)
    order, model, params = _group(RUNS, arch, "loop", torch.float32)
    x, y = _data(arch, torch.float32)
    if shared:
        xb, yb = x[:BATCH], y[:BATCH]
    else:  # each run its own batch, as runs of different seeds get in one program
        xb = torch.stack([x[(r % STEPS) * BATCH:(r % STEPS + 1) * BATCH] for r in range(len(order))])
        yb = torch.stack([y[(r % STEPS) * BATCH:(r % STEPS + 1) * BATCH] for r in range(len(order))])
    logits, losses = model.backward_by_block(params, xb, yb)
    by_block = [p.grad for p in params]
    whole_logits, _ = model.forward(params, xb)
    whole = torch.autograd.grad(model.per_run_loss(whole_logits, yb).sum(), params)
    for r, run in enumerate(order):
        _, m1, p1 = _group([run], arch, "loop", torch.float32)
        l1, _ = m1.forward(p1, xb if shared else xb[r:r + 1])
        loss1 = m1.per_run_loss(l1, yb if shared else yb[r:r + 1])
        alone = torch.autograd.grad(loss1.sum(), p1)
        assert torch.equal(logits[r], l1[0].detach()) and torch.equal(losses[r], loss1[0].detach()), run
        for got, want, w in zip(by_block, alone, whole):
            assert torch.equal(got[r], want[0]), run
            torch.testing.assert_close(got[r], w[r], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", ["tinyvgg-1ch", "tinyvgg-3ch", "mlp"])
def test_probes_of_a_group_equal_each_run_alone(family):
    arch = FAMILIES[family]
    x, y = _data(arch, torch.float64)
    results = {}
    for conv in ("loop", "grouped"):
        order, model, params = _group(RUNS, arch, conv, torch.float64)
        results[conv] = probes.probe(model, params, x, y, eps=0.01)
    for r, run in enumerate(order):
        _, m1, p1 = _group([run], arch, "loop", torch.float64)
        alone = probes.probe(m1, p1, x, y, eps=0.01)
        for conv, res in results.items():
            for metric, by_layer in alone.items():
                for layer, v in by_layer.items():
                    torch.testing.assert_close(res[metric][layer][r], v[0], rtol=1e-10, atol=1e-12,
                                               msg=lambda m: f"{conv} {run} {metric} layer {layer}: {m}")
