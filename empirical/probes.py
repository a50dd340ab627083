"""Per-layer gradient-flow measurements of stacked models on a fixed probe batch.

Layer l = 1..L are the hidden layers, z_l = W_l h_{l-1} + b_l and h_l = φ(z_l); layer L+1 is the
output layer (z_{L+1} = logits, no activation); layer 0 holds the input's second moment. With the
probe loss L = mean cross-entropy over the probe batch, every metric is one number per run and layer:

- ``grad_norm_z``: ‖∂L/∂z_l‖ (Frobenius over batch and units), ``grad_norm_h``: ‖∂L/∂h_l‖;
- ``weight_grad_norm``: ‖∂L/∂W_l‖_F, ``mean_abs_grad``: mean |∂L/∂W_l| (the seeds' first-layer metric);
- ``dead_frac``: fraction of units with h = 0 on every probe input (channels for convolutions);
- ``saturated_frac``: fraction of (unit, input) entries with |φ′(z)| < ε;
- ``preact_q``: mean z² (the theory's q_l), ``preact_var``: variance of z;
- ``weight_spectral_norm``: ‖W_l‖₂ (linear layers), for the bound ‖∂L/∂h_{l-1}‖ ≤ Lip(φ)·‖W_l‖₂·‖∂L/∂z_l‖;
- with ``distributions`` (the first and the last probe of a run): ``act_qNN``, the NN % quantile of the
  entries of h_l (hidden layers), and ``wgrad_qNN``, the NN % quantile of the entries |∂L/∂W_l|, for
  NN in 05, 25, 50, 75, 95 (linear interpolation, as numpy.quantile; a run with more than 2²² entries
  in a layer is subsampled with a fixed stride).
"""
from __future__ import annotations

import math

import torch

from empirical.models import StackedModel

METRICS = ("grad_norm_z", "grad_norm_h", "weight_grad_norm", "mean_abs_grad", "dead_frac",
           "saturated_frac", "preact_q", "preact_var", "weight_spectral_norm")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
ACT_QUANTILES = tuple(f"act_q{round(100 * q):02d}" for q in QUANTILES)
WGRAD_QUANTILES = tuple(f"wgrad_q{round(100 * q):02d}" for q in QUANTILES)
DIST_METRICS = ACT_QUANTILES + WGRAD_QUANTILES
_MAX_QUANTILE_ENTRIES = 1 << 22


def _per_run(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def probe(model: StackedModel, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
          eps: float, spectral: bool = True, distributions: bool = False) -> dict[str, dict[int, torch.Tensor]]:
    """metric -> {layer: tensor [R]} measured on the batch (x, y); parameters are not changed."""
    out: dict[str, dict[int, torch.Tensor]] = {m: {} for m in METRICS + (DIST_METRICS if distributions else ())}
    with torch.enable_grad():
        logits, cap = model.forward(params, x, capture=True)
        loss = model.per_run_loss(logits, y).sum()
        n_hidden = len(cap.z_raw)
        raws = [*cap.z_raw, *cap.h_raw]
        grads = torch.autograd.grad(loss, [*params, *(t for r in raws for t in r), logits])
    del loss
    n_p = len(params)
    g_params = grads[:n_p]
    g_raw, k = [], n_p
    for r in raws:                  # per layer: the gradients with respect to its tensors
        g_raw.append(grads[k:k + len(r)])
        k += len(r)
    g_z, g_h = g_raw[:n_hidden], g_raw[n_hidden:]
    g_logits = grads[-1]
    del grads, g_raw, raws
    R = model.R

    def take(tensors: list, i: int) -> torch.Tensor:
        """Layer i's run-major tensor; its per-block tensors are let go, so that a layer's copy and the blocks
        it was joined from are held together only for one tensor at a time."""
        t = cap.join(tensors[i]).detach()
        tensors[i] = None
        return t

    with torch.no_grad():
        shared = x.dim() == len(model.arch.input_shape) + 1
        out["preact_q"][0] = (x.float() ** 2).mean().expand(R).clone() if shared else _per_run(x.float() ** 2).mean(1)
        for i in range(n_hidden + 1):
            layer = i + 1
            gw = g_params[2 * i]
            out["weight_grad_norm"][layer] = _per_run(gw).norm(dim=1)
            out["mean_abs_grad"][layer] = _per_run(gw).abs().mean(dim=1)
            if distributions:
                for m, v in zip(WGRAD_QUANTILES, _quantiles(_per_run(gw).abs())):
                    out[m][layer] = v
            if model.arch.model == "mlp" and spectral:
                out["weight_spectral_norm"][layer] = _spectral_norm(params[2 * i].detach())
            if i == n_hidden:
                out["grad_norm_z"][layer] = _per_run(g_logits).norm(dim=1)
                out["preact_q"][layer], out["preact_var"][layer] = _moments(logits.detach())
                continue
            out["grad_norm_z"][layer] = _per_run(take(g_z, i)).norm(dim=1)
            out["grad_norm_h"][layer] = _per_run(take(g_h, i)).norm(dim=1)
            z = take(cap.z_raw, i)
            out["preact_q"][layer], out["preact_var"][layer] = _moments(z)
            out["saturated_frac"][layer] = _saturated(model, z, eps)
            del z
            h = take(cap.h_raw, i)
            # a unit is dead when max |h| over the inputs (and positions) is 0: h == 0 everywhere, NaN not dead
            dead = h.abs().amax(dim=1 if h.dim() == 3 else (1, 3, 4)) == 0
            out["dead_frac"][layer] = dead.float().mean(dim=1)
            if distributions:
                for m, v in zip(ACT_QUANTILES, _quantiles(_per_run(h))):
                    out[m][layer] = v
            del h
    return out


def _quantiles(flat: torch.Tensor) -> torch.Tensor:
    """[len(QUANTILES), R]: the quantiles of each run's entries (rows of ``flat`` [R, N])."""
    flat = flat.float()
    step = -(-flat.shape[1] // _MAX_QUANTILE_ENTRIES)
    if step > 1:
        flat = flat[:, ::step]
    q = torch.tensor(QUANTILES, dtype=flat.dtype, device=flat.device)
    if flat.numel() <= _MAX_QUANTILE_ENTRIES:
        return torch.quantile(flat, q, dim=1)
    return torch.stack([torch.quantile(row, q) for row in flat], dim=1)


def _moments(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per run: the second moment mean(z²) and the (population) variance mean(z²) − mean(z)²."""
    flat = _per_run(z)
    m2 = (flat * flat).mean(dim=1)
    m1 = flat.mean(dim=1)
    return m2, (m2.double() - m1.double() ** 2).clamp_min(0).float()


def _spectral_norm(w: torch.Tensor) -> torch.Tensor:
    """‖W_r‖₂ = 2^k·√λ_max(VᵀV) per run (the smaller Gram matrix) with V = W_r/2^k and 2^k ≥ max|W_r|/2,
    an exact power-of-two rescaling, so the Gram matrix cannot overflow whatever the scale of W;
    NaN for a run whose weights are not finite or whose eigenvalue solver does not converge."""
    top = w.abs().flatten(1).amax(dim=1)    # NaN or ∞ exactly where a run's weights are not all finite
    finite = torch.isfinite(top)
    if not bool(finite.all()):
        w = torch.where(finite[:, None, None], w, torch.zeros_like(w))
        top = w.abs().flatten(1).amax(dim=1)
    _, k = torch.frexp(top)
    v = _times_pow2(w, -k)
    gram = v.transpose(1, 2) @ v if v.shape[2] <= v.shape[1] else v @ v.transpose(1, 2)
    try:
        lam = torch.linalg.eigvalsh(gram)[:, -1]
    except RuntimeError:  # no convergence for some run: solve one by one, NaN where it fails
        lam = torch.stack([_top_eigenvalue(g) for g in gram])
    s = lam.clamp_min(0).sqrt() * torch.exp2(k.to(lam.dtype))
    ok = finite & torch.isfinite(s)
    return torch.where(ok, s, torch.full_like(s, float("nan")))


def _times_pow2(w: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """w_r·2^(e_r) for integer exponents e [R], rounded once, as ``numpy.ldexp`` (``torch.ldexp`` is 10-20x slower
    for a [15, 784, 128] stack here). Each factor 2^n is a normal float of w's dtype, so a shift beyond that range
    (a run whose weights all lie below 2^-127, or reach 2^127, in float32; up to 2^276 for a subnormal float32
    weight) is split into up to three factors, the remainders first; a larger shift gives what ±3·127 gives. Every
    factor moves w the same way, so only the last product can overflow or become subnormal: one rounding."""
    fi = torch.finfo(w.dtype)
    lo, hi = math.frexp(fi.tiny)[1] - 1, math.frexp(fi.max)[1] - 1      # -126, 127 in float32 (log2(max) rounds up)
    e = e.clamp(3 * lo, 3 * hi)       # 3·127 > 277, the span from the smallest subnormal to the largest float
    first = e.clamp(lo, hi)
    mid = (e - first).clamp(lo, hi)
    rest = e - first - mid

    def pow2(n):
        return torch.ldexp(torch.ones(n.shape, dtype=w.dtype, device=w.device), n)[:, None, None]

    for n in (rest, mid):
        if bool(n.any()):
            w = w * pow2(n)
    return w * pow2(first)


def _top_eigenvalue(g: torch.Tensor) -> torch.Tensor:
    try:
        return torch.linalg.eigvalsh(g)[-1]
    except RuntimeError:
        return torch.tensor(float("nan"), dtype=g.dtype, device=g.device)


def _saturated(model: StackedModel, z: torch.Tensor, eps: float) -> torch.Tensor:
    """Per run: the fraction of entries of the run-major z [R, ...] with |φ′(z)| < ε (φ′ by autograd, each
    activation on its own runs)."""
    fracs = []
    for (s, e), fn in zip(model.slices, model.act_fns):
        with torch.enable_grad():
            zz = z[s:e].detach().requires_grad_(True)
            (d,) = torch.autograd.grad(fn(zz).sum(), zz)
        fracs.append(_per_run((d.abs() < eps).float()).mean(dim=1))
    return fracs[0] if len(fracs) == 1 else torch.cat(fracs)
