"""Models whose parameters are stacked over runs, so that R runs train as one program.

Every parameter has a leading run dimension R. An MLP layer is a batched matmul
``z = h @ W + b`` with ``W: [R, fan_in, fan_out]``; TinyVGG's runs are convolved in blocks (one run, or one
activation's runs as one grouped convolution: ``StackedModel``). Runs are ordered so that runs sharing an
activation form contiguous slices; each activation is applied to its own slice. Nothing is shared between runs
except the input batch, so each run's gradients equal those of the same model trained alone.
"""
from __future__ import annotations

import functools
import importlib
import math
import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import sympy as sp
import torch
import torch.nn.functional as F

from theory import activations as registry
from theory import init as init_table

# ----------------------------------------------------------------------------- activations

_TORCH_FUNCS = {
    sp.exp: torch.exp, sp.log: torch.log, sp.tanh: torch.tanh, sp.sinh: torch.sinh, sp.cosh: torch.cosh,
    sp.sin: torch.sin, sp.cos: torch.cos, sp.atan: torch.atan, sp.erf: torch.erf, sp.erfc: torch.erfc,
}


def _log_max(dtype: torch.dtype) -> float:
    """The largest u with exp(u) finite in ``dtype`` (a little below log of the largest float)."""
    return math.log(torch.finfo(dtype).max) - 0.01


def _exp_of(u):
    return lambda t: torch.exp(torch.clamp(u(t), max=_log_max(t.dtype)))


def _is_one_plus_exp(e) -> sp.Expr | None:
    """u if ``e`` is 1 + exp(u), else None."""
    if isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.One in e.args:
        other = e.args[0] if e.args[1] == sp.S.One else e.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


_PROBES = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 10.0, -10.0, 100.0, -100.0, 1e3, -1e3, 1e4, -1e4)


def compile_expr(expr: sp.Expr) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch function computing the sympy expression ``expr`` in ``x`` elementwise (autograd-able),
    safe in float32 and float64 wherever the function and its derivative are finite:

    - ``Piecewise``/``where``: each branch is evaluated only where it is selected (elsewhere at a point of
      its own region), so an unselected branch's NaN or ∞ cannot leak into values or gradients;
    - 1/(1 + eᵘ) is ``sigmoid(−u)`` and log(1 + eᵘ) is ``softplus(u)`` (no overflow, no cancellation);
    - eᵘ is evaluated at min(u, log max): past that point it is the largest float (its own overflow), and
      an outer function that saturates there (tanh(eˣ) = 1, TeLU) gets the exact zero derivative, not 0·∞.
    """

    def build(e):
        if e == registry.x:
            return lambda t: t
        if e.is_Number or e.is_NumberSymbol:
            c = float(e)
            return lambda t: torch.full_like(t, c)
        if isinstance(e, sp.Add):
            parts = [build(a) for a in e.args]
            return lambda t: functools.reduce(operator.add, (p(t) for p in parts))
        if isinstance(e, sp.Mul):
            parts = [build(a) for a in e.args]
            return lambda t: functools.reduce(operator.mul, (p(t) for p in parts))
        if isinstance(e, sp.Pow):
            u = _is_one_plus_exp(e.base)
            if u is not None and e.exp.is_Integer and e.exp < 0:
                inner, k = build(-u), int(-e.exp)
                return (lambda t: torch.sigmoid(inner(t))) if k == 1 else (lambda t: torch.sigmoid(inner(t)) ** k)
            base, ex = build(e.base), e.exp
            if ex == sp.Rational(1, 2):
                return lambda t: torch.sqrt(base(t))
            if ex.is_Number:
                p = float(ex)
                if p == int(p):
                    return lambda t: torch.pow(base(t), int(p))
                return lambda t: torch.pow(base(t), p)
            expo = build(ex)
            return lambda t: torch.pow(base(t), expo(t))
        if isinstance(e, sp.log):
            u = _is_one_plus_exp(e.args[0])
            if u is not None:
                inner = build(u)
                return lambda t: F.softplus(inner(t))
        if isinstance(e, sp.exp):
            return _exp_of(build(e.args[0]))
        if isinstance(e, sp.Piecewise):
            return _piecewise(e, build)
        fn = _TORCH_FUNCS.get(e.func)
        if fn is not None and len(e.args) == 1:
            inner = build(e.args[0])
            return lambda t: fn(inner(t))
        raise registry.FormulaError(f"cannot compile {e.func.__name__} in {expr} to torch")

    f = build(expr)
    return lambda t: f(t)


def _piecewise(e: sp.Piecewise, build):
    """Branch i is taken where its condition holds and no earlier one does; it is evaluated at x there
    and at a fixed point x_i of its own region elsewhere (the "double where")."""
    conds = [_build_cond(c, build) for _, c in e.args]
    vals = [build(v) for v, _ in e.args]
    probe = torch.tensor(_PROBES, dtype=torch.float64)
    with torch.no_grad():
        taken, masks = torch.zeros_like(probe, dtype=torch.bool), []
        for c in conds:
            m = c(probe) & ~taken
            masks.append(m)
            taken |= m
        anchors = []
        for m, v in zip(masks, vals):
            ok = m.clone()
            if bool(ok.any()):
                ok &= torch.isfinite(v(probe))
            anchors.append(float(probe[ok][0]) if bool(ok.any()) else None)

    def pw(t):
        out, taken = None, torch.zeros_like(t, dtype=torch.bool)
        sel = []
        for c in conds:
            m = c(t) & ~taken
            sel.append(m)
            taken = taken | m
        for m, v, a in reversed(list(zip(sel, vals, anchors))):
            arg = t if a is None else torch.where(m, t, torch.full_like(t, a))
            val = v(arg)
            out = val if out is None else torch.where(m, val, out)
        return out
    return pw


def _build_cond(cond, build):
    if cond is sp.true or cond == True:  # noqa: E712 - sympy's true
        return lambda t: torch.ones_like(t, dtype=torch.bool)
    ops = {sp.StrictLessThan: torch.lt, sp.LessThan: torch.le, sp.StrictGreaterThan: torch.gt,
           sp.GreaterThan: torch.ge}
    if type(cond) in ops:
        lhs, rhs, op = build(cond.lhs), build(cond.rhs), ops[type(cond)]
        return lambda t: op(lhs(t), rhs(t))
    if isinstance(cond, sp.And):
        parts = [_build_cond(c, build) for c in cond.args]
        return lambda t: functools.reduce(operator.and_, (p(t) for p in parts))
    if isinstance(cond, sp.Or):
        parts = [_build_cond(c, build) for c in cond.args]
        return lambda t: functools.reduce(operator.or_, (p(t) for p in parts))
    if isinstance(cond, sp.Not):
        inner = _build_cond(cond.args[0], build)
        return lambda t: ~inner(t)
    if cond is sp.false or cond == False:  # noqa: E712
        return lambda t: torch.zeros_like(t, dtype=torch.bool)
    if isinstance(cond, sp.ITE):
        a, b, c = (_build_cond(c, build) for c in cond.args)
        return lambda t: torch.where(a(t), b(t), c(t))
    raise registry.FormulaError(f"cannot compile condition {cond} to torch")


def torch_activation(act: registry.Activation, native: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation as a torch function: its native op where torch has one, else compiled from ``expr``."""
    if native and act.torch_op is not None:
        path, kwargs = act.torch_op
        module, _, name = path.rpartition(".")
        fn = getattr(importlib.import_module(module), name)
        kw = dict(kwargs)
        return (lambda t: fn(t, **kw)) if kw else fn
    return compile_expr(act.expr)


# ----------------------------------------------------------------------------- initialisation

def init_sigmas(init: str, act_name: str, fan_in: int, fan_out: int, sigma_b2: float,
                sigma_w2: float | None = None) -> tuple[float, float]:
    """(σ_w², σ_b²) of one layer, Var(W_ij) = σ_w²/fan_in, Var(b_i) = σ_b²: ``theory.init.sigmas``."""
    return init_table.sigmas(init, fan_in, fan_out, act=act_name, sigma_b2=sigma_b2, sigma_w2=sigma_w2)


def layer_fans(arch: "Arch") -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every layer as the init table counts them (a 3×3 convolution: channels × 9)."""
    return [(fi, fo) if kind == "linear" else (fi * 9, fo * 9) for kind, fi, fo in arch.layers]


def layer_sigmas(arch: "Arch", init: str, act_name: str, sigma_b2: float,
                 sigma_w2: float | None = None) -> list[tuple[float, float]]:
    """(σ_w², σ_b²) of layers 1..L+1 as drawn by ``init_params``."""
    return [init_sigmas(init, act_name, fi, fo, sigma_b2, sigma_w2) for fi, fo in layer_fans(arch)]


def _draw(shape, init, act_name, fan_in, fan_out, sigma_b2, gen, sigma_w2=None):
    sw2, sb2 = init_sigmas(init, act_name, fan_in, fan_out, sigma_b2, sigma_w2)
    if init_table.canonical(init) == "default":
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand(shape[:1] if len(shape) == 2 else (shape[0],), generator=gen, dtype=torch.float64) * 2 - 1) * bound
    elif init == "glorot_uniform":
        bound = math.sqrt(3.0 * sw2 / fan_in)                  # = √(6/(fan_in+fan_out))
        w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        b = torch.zeros((shape[0],), dtype=torch.float64)
    else:
        w = torch.randn(shape, generator=gen, dtype=torch.float64) * math.sqrt(sw2 / fan_in)
        b = torch.randn((shape[0],), generator=gen, dtype=torch.float64) * math.sqrt(sb2)
    return w, b


# ----------------------------------------------------------------------------- architecture

@dataclass(frozen=True)
class Arch:
    """Shapes of one model: ``layers`` lists (kind, fan_in, fan_out) with kind 'linear' or 'conv'."""

    model: str
    input_shape: tuple[int, ...]
    num_classes: int
    widths: tuple[int, ...] = (128, 64)
    channels: int = 8

    @property
    def layers(self) -> list[tuple[str, int, int]]:
        if self.model == "mlp":
            dims = [math.prod(self.input_shape), *self.widths, self.num_classes]
            return [("linear", a, b) for a, b in zip(dims[:-1], dims[1:])]
        c, h, w = self.input_shape
        k = self.channels
        flat = k * (h // 4) * (w // 4)
        return [("conv", c, k), ("conv", k, k), ("conv", k, k), ("conv", k, k), ("linear", flat, self.num_classes)]

    def flops_per_sample(self) -> int:
        """Multiply-adds ×2 of one forward pass of one model."""
        if self.model == "mlp":
            return sum(2 * a * b for _, a, b in self.layers)
        c, h, w = self.input_shape
        k = self.channels
        conv = 2 * 9 * (c * k * h * w + k * k * h * w + k * k * (h // 2) * (w // 2) * 2)
        return conv + 2 * self.layers[-1][1] * self.num_classes


def init_params(arch: Arch, inits: Sequence[tuple], dtype=torch.float32,
                device="cpu") -> list[torch.Tensor]:
    """Stacked parameters [W_1, b_1, ..., W_L, b_L] for runs given as (activation, init, seed, σ_b²[, σ_w²]).

    Each run draws from its own generator seeded with its seed, in float64, so that a run's
    initial weights do not depend on which other runs share its program.
    """
    per_run = []
    for act_name, init, seed, sb2, *rest in inits:
        sw2 = rest[0] if rest else None
        gen = torch.Generator().manual_seed(int(seed))
        params = []
        for kind, fan_in, fan_out in arch.layers:
            if kind == "linear":
                w, b = _draw((fan_out, fan_in), init, act_name, fan_in, fan_out, sb2, gen, sw2)
                params += [w.T.contiguous(), b]
            else:
                fi = fan_in * 9
                w, b = _draw((fan_out, fi), init, act_name, fi, fan_out * 9, sb2, gen, sw2)
                params += [w.reshape(fan_out, fan_in, 3, 3), b]
        per_run.append(params)
    return [torch.stack([p[i] for p in per_run]).to(device=device, dtype=dtype).requires_grad_(True)
            for i in range(len(per_run[0]))]


@dataclass
class Captured:
    """Pre-activations z_l and post-activations h_l of the hidden layers, as the forward graph holds them.

    ``z_raw``/``h_raw``: per layer, the tuple of tensors gradients are taken with respect to (the MLP's z/h
    [R, B, n] alone; TinyVGG's per-block tensors). ``join`` turns such a tuple, or the tuple of gradients with
    respect to it, into one run-major tensor [R, B, ...] (for TinyVGG a copy, made when asked for).
    """

    z_raw: list[tuple[torch.Tensor, ...]]
    h_raw: list[tuple[torch.Tensor, ...]]
    join: Callable[[Sequence[torch.Tensor]], torch.Tensor]


CONV_STRATEGIES = ("auto", "loop", "grouped")


def conv_strategy(device: torch.device | str, conv: str = "auto") -> str:
    """How TinyVGG's R runs are convolved: 'loop' (one convolution per run) or 'grouped' (one per activation).

    The rule for 'auto': on a CPU the per-run loop, the convolution a run trained alone makes, so that batched
    equals alone bit for bit (the grouped one rounds differently; in ``benchmarks/throughput.py``'s ceiling it
    took 0.84x the loop's time on 1x28x28 and 1.57x on 3x32x32, with glibc keeping freed memory); on a GPU
    the grouped convolution (one kernel per activation instead of one per run).
    """
    if conv not in CONV_STRATEGIES:
        raise ValueError(f"unknown convolution strategy {conv!r}; allowed: {', '.join(CONV_STRATEGIES)}")
    if conv != "auto":
        return conv
    return "grouped" if torch.device(device).type == "cuda" else "loop"


class _MaxPool2(torch.autograd.Function):
    """2×2 max pooling of stride 2 on an NCHW tensor, equal bit for bit to ``F.max_pool2d(h, 2)``.

    ATen's CPU kernel is 3-6x faster on a channels-last copy at TinyVGG's 8-16 channels (3.4 -> 1.3 ms for
    [128, 8, 28, 28], copies included), and picks the same maximum and index (the first of equal values, the
    last NaN); the backward is ATen's own NCHW kernel with those indices, as for ``F.max_pool2d``.
    """

    @staticmethod
    def forward(ctx, h):
        out, idx = F.max_pool2d(h.contiguous(memory_format=torch.channels_last), 2, return_indices=True)
        idx = idx.contiguous()
        ctx.save_for_backward(h, idx)
        return out.contiguous()

    @staticmethod
    def backward(ctx, g):
        h, idx = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(g, h, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)


def max_pool2(h: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(h, 2)`` for NCHW ``h``, through a channels-last copy on a CPU (``_MaxPool2``)."""
    if h.device.type != "cpu" or h.dim() != 4:
        return F.max_pool2d(h, 2)
    return _MaxPool2.apply(h)


class StackedModel:
    """R models of one architecture, stacked; ``slices`` maps each activation to its run range.

    TinyVGG's feature maps are never split and re-concatenated: the runs form *blocks* that stay apart from
    the input to the flattened features, each block a contiguous run range under one activation (one run per
    block for ``conv='loop'``, one activation's runs for ``conv='grouped'``, convolved with ``groups`` = its runs).
    """

    def __init__(self, arch: Arch, act_fns: Sequence[Callable], slices: Sequence[tuple[int, int]],
                 conv: str = "loop"):
        if conv not in ("loop", "grouped"):
            raise ValueError(f"StackedModel needs conv 'loop' or 'grouped' (see conv_strategy), not {conv!r}")
        self.arch = arch
        self.act_fns = list(act_fns)
        self.slices = list(slices)
        self.R = slices[-1][1]
        self.conv = conv
        if self.conv == "loop":
            self.blocks = [(r, r + 1, fn) for (s, e), fn in zip(self.slices, self.act_fns) for r in range(s, e)]
        else:
            self.blocks = [(s, e, fn) for (s, e), fn in zip(self.slices, self.act_fns)]

    def _act(self, z: torch.Tensor, dim: int) -> torch.Tensor:
        if len(self.slices) == 1:
            return self.act_fns[0](z)
        # one split node, not one narrow per slice: narrow's backward writes a full-size zero tensor per slice
        chunks = z.split([e - s for s, e in self.slices], dim)
        return torch.cat([fn(c) for fn, c in zip(self.act_fns, chunks)], dim)

    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor, capture: bool = False):
        """Logits [R, B, C] for input x: [B, ...] shared by all runs or [R, B, ...] per run."""
        cap = (Captured([], [], join=operator.itemgetter(0) if self.arch.model == "mlp" else self.join_blocks)
               if capture else None)
        if self.arch.model == "mlp":
            if x.dim() == len(self.arch.input_shape) + 1:
                h = x.reshape(1, x.shape[0], -1).expand(self.R, -1, -1)
            else:
                h = x.reshape(self.R, x.shape[1], -1)
            n = len(self.arch.layers)
            for i in range(n):
                W, b = params[2 * i], params[2 * i + 1]
                z = torch.baddbmm(b.unsqueeze(1), h, W)
                if i == n - 1:
                    return z, cap
                h = self._act(z, 0)
                if cap is not None:
                    cap.z_raw.append((z,)), cap.h_raw.append((h,))
        return self._forward_vgg(params, x, cap)

    def _forward_vgg(self, params, x, cap):
        """Each block [s, e) of n runs is a [B, n·k, H, W] tensor convolved with ``groups = n``."""
        sizes = [e - s for s, e, _ in self.blocks]
        per_block = [p.split(sizes) for p in params[:8]]
        zs, hs = ([[] for _ in range(4)], [[] for _ in range(4)]) if cap is not None else (None, None)
        flats = [self._features([p[j] for p in per_block], x, j, zs, hs) for j in range(len(self.blocks))]
        if cap is not None:
            cap.z_raw.extend(map(tuple, zs)), cap.h_raw.extend(map(tuple, hs))
        flat = flats[0] if len(flats) == 1 else torch.cat(flats, 0)
        W, b = params[8], params[9]
        return torch.baddbmm(b.unsqueeze(1), flat, W), cap

    def _features(self, ps, x, j, zs=None, hs=None) -> torch.Tensor:
        """Block j's flattened features [n, B, k·(H/4)·(W/4)]: its four convolutions (``groups`` = its n runs),
        activations and poolings, from ``ps`` (its slices of the eight convolution parameters) and x ([B, ...]
        shared or [R, B, ...] per run). Each layer's z and h are appended to ``zs[i]`` and ``hs[i]`` when given."""
        s, e, fn = self.blocks[j]
        n = e - s
        if x.dim() == 4:
            B, h = x.shape[0], x.repeat(1, n, 1, 1) if n > 1 else x
        else:
            B, h = x.shape[1], x[s:e].transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        for i in range(4):
            W, b = ps[2 * i], ps[2 * i + 1]
            z = F.conv2d(h, W.reshape(-1, *W.shape[2:]), b.reshape(-1), padding=1, groups=n)
            h = fn(z)
            if zs is not None:
                zs[i].append(z), hs[i].append(h)
            if i in (1, 3):
                h = max_pool2(h)
        return h.reshape(B, n, -1).transpose(0, 1)

    def backward_by_block(self, params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        """Logits [R, B, C] and per-run losses [R] (both detached) of a TinyVGG step, with ∂(Σ_r L_r)/∂θ written
        to each parameter's ``.grad``, one block at a time: a block's forward, loss and backward run before the
        next block's forward, so only one block's feature maps are ever held. Each run goes through the
        operations it would go through trained alone (its own classifier matmul included), so its gradients
        are those."""
        if self.arch.model != "tinyvgg":
            raise ValueError("backward_by_block is for TinyVGG; an MLP step is one batched program")
        grads = [torch.empty_like(p) for p in params]
        logits, losses = [], []
        for j, (s, e, _) in enumerate(self.blocks):
            ps = [p[s:e] for p in params]
            out = torch.baddbmm(ps[9].unsqueeze(1), self._features(ps, x, j), ps[8])
            loss = self.per_run_loss(out, y if y.dim() == 1 else y[s:e])
            for g_all, g in zip(grads, torch.autograd.grad(loss.sum(), ps)):
                g_all[s:e] = g
            logits.append(out.detach()), losses.append(loss.detach())
        for p, g in zip(params, grads):
            p.grad = g
        return torch.cat(logits), torch.cat(losses)

    def join_blocks(self, ts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-block tensors [B, n·k, H, W] (the runs of block j side by side) as one run-major [R, B, k, H, W]."""
        B = ts[0].shape[0]
        parts = [t.reshape(B, e - s, -1, *t.shape[2:]).transpose(0, 1) for t, (s, e, _) in zip(ts, self.blocks)]
        return parts[0].contiguous() if len(parts) == 1 else torch.cat(parts, 0)

    def per_run_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of each run: [R]. ``y`` is [B] or [R, B]."""
        R, B, C = logits.shape
        yy = y.expand(R, B) if y.dim() == 1 else y
        return F.cross_entropy(logits.reshape(R * B, C), yy.reshape(-1), reduction="none").view(R, B).mean(1)
