"""Sharpness: the top eigenvalue λ_max of the training-loss Hessian, per run, by batched Lanczos.

The runs of a group are stacked (``empirical.models``) and the probe loss is the sum of the runs'
losses, so its Hessian is block-diagonal with one block H_r per run. A Hessian-vector product of the
sum with a stacked vector v = (v_1, …, v_R) is therefore (H_1 v_1, …, H_R v_R): one double-backward
pass serves every run, and Lanczos with per-run inner products runs R independent Krylov iterations
at once. After k steps the Ritz value θ_max(T_k) ≤ λ_max and converges to it from below (Lanczos
finds extreme eigenvalues first); full re-orthogonalisation keeps it free of spurious copies.

Two quantities are compared with step-size thresholds:

- gradient descent with step η (and heavy-ball momentum β) is stable on a quadratic with curvature λ
  iff λ < (2 + 2β)/η; the *edge of stability* (Cohen et al., 2021) is λ_max ≈ 2/η for plain GD;
- Adam with bias-corrected second moment v̂ and β₁ is stable iff the *preconditioned sharpness*
  λ_max(P⁻¹H) < (2 + 2β₁)/((1 − β₁)η) = 38/η for β₁ = 0.9, with P = (1 − β₁ᵗ)·diag(√v̂ + ε)
  (Cohen et al., 2022). P⁻¹H is similar to the symmetric P^{-1/2} H P^{-1/2}, so Lanczos applies.

The engine measures it on the fixed probe batch at step 0, every ``sharpness_every`` steps and at the
end (off by default), and records it in ``layers.csv`` as metrics ``sharpness`` and
``preconditioned_sharpness`` at layer 0 (a whole-network quantity), after ``step`` updates.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

Vec = list[torch.Tensor]


def _dot(a: Vec, b: Vec) -> torch.Tensor:
    """Per-run inner product: [R]."""
    return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b))


def _axpy(alpha: torch.Tensor, x: Vec, y: Vec) -> Vec:
    """y + α_r x_r per run."""
    return [yy + alpha.view(-1, *([1] * (xx.dim() - 1))) * xx for xx, yy in zip(x, y)]


def _scale(alpha: torch.Tensor, x: Vec) -> Vec:
    return [alpha.view(-1, *([1] * (xx.dim() - 1))) * xx for xx in x]


def lanczos_top(hvp: Callable[[Vec], Vec], like: Sequence[torch.Tensor], iters: int = 20,
                seed: int = 0, tol: float = 1e-6) -> torch.Tensor:
    """λ_max of the symmetric operators ``hvp`` (one per run, leading dimension R of ``like``): [R] float64.

    ``hvp`` maps a stacked vector (tensors shaped like ``like``) to the stacked products (A_r v_r)_r.
    A run whose Krylov space closes early (β_j ≤ tol·max|α|) keeps the Ritz values found so far,
    which are then exact; a run whose products are not finite gets NaN.
    """
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p) for p in like]
    R = like[0].shape[0]
    norm = _dot(v, v).sqrt()
    q = _scale(1.0 / norm, v)
    basis: list[Vec] = []
    alphas, betas = [], []
    active = torch.ones(R, dtype=torch.bool, device=like[0].device)
    length = torch.zeros(R, dtype=torch.long)
    for _ in range(iters):
        basis.append(q)
        length += active.cpu().long()
        w = [t.detach() for t in hvp(q)]
        a = _dot(w, q)
        alphas.append(torch.where(active, a, torch.zeros_like(a)))
        for qi in basis:
            w = _axpy(-_dot(w, qi), qi, w)
        for qi in basis:
            w = _axpy(-_dot(w, qi), qi, w)
        b = _dot(w, w).clamp_min(0).sqrt()
        scale = torch.stack(alphas).abs().amax(0).clamp_min(1e-30)
        active = active & (b > tol * scale)
        betas.append(torch.where(active, b, torch.zeros_like(b)))
        if not bool(active.any()):
            break
        q = _scale(torch.where(active, 1.0 / b.clamp_min(1e-30), torch.zeros_like(b)), w)
    A = torch.stack(alphas).double().cpu().numpy()
    B = torch.stack(betas).double().cpu().numpy()
    out = np.full(R, np.nan)
    for r in range(R):
        k = int(length[r])
        a, b = A[:k, r], B[:k - 1, r]
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        out[r] = np.linalg.eigvalsh(T)[-1]
    return torch.from_numpy(out)


def loss_hvp(loss_fn: Callable[[Vec], torch.Tensor], params: Sequence[torch.Tensor]) -> Callable[[Vec], Vec]:
    """v ↦ ∇²L(params)·v for the scalar ``loss_fn(params)`` (the runs' summed loss), by double backward."""
    ps = [p.detach().requires_grad_(True) for p in params]
    with torch.enable_grad():
        grads = torch.autograd.grad(loss_fn(ps), ps, create_graph=True)

    def hvp(v: Vec) -> Vec:
        with torch.enable_grad():
            out = torch.autograd.grad(grads, ps, grad_outputs=v, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if o is None else o for o, p in zip(out, ps)]
    return hvp


def adam_preconditioner(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> Vec | None:
    """P = (1 − β₁ᵗ)·(√v̂ + ε) elementwise, for Adam's state of ``params``; None before the first step."""
    group = opt.param_groups[0]
    b1, b2 = group["betas"]
    eps = group["eps"]
    out = []
    for p in params:
        st = opt.state.get(p)
        if not st or "exp_avg_sq" not in st:
            return None
        t = float(st["step"])
        vhat = st["exp_avg_sq"] / (1 - b2 ** t)
        out.append((1 - b1 ** t) * (vhat.sqrt() + eps))
    return out


def preconditioned(hvp: Callable[[Vec], Vec], precond: Vec) -> Callable[[Vec], Vec]:
    """u ↦ P^{-1/2} H P^{-1/2} u: same eigenvalues as P⁻¹H."""
    inv_sqrt = [d.rsqrt() for d in precond]

    def op(u: Vec) -> Vec:
        return [s * h for s, h in zip(inv_sqrt, hvp([s * x for s, x in zip(inv_sqrt, u)]))]
    return op


def measure(model, params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            opt: torch.optim.Optimizer | None = None, iters: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    """{'sharpness': λ_max(H) [R], 'preconditioned_sharpness': λ_max(P⁻¹H) [R] (Adam only)} on (x, y).

    H is the Hessian of each run's mean cross-entropy on the batch; parameters are not changed.
    """
    def loss_fn(ps):
        logits, _ = model.forward(ps, x)
        return model.per_run_loss(logits, y).sum()

    hvp = loss_hvp(loss_fn, params)
    out = {"sharpness": lanczos_top(hvp, params, iters=iters, seed=seed).float()}
    if isinstance(opt, torch.optim.Adam):
        pre = adam_preconditioner(opt, params)
        if pre is not None:
            out["preconditioned_sharpness"] = lanczos_top(preconditioned(hvp, pre), params, iters=iters,
                                                          seed=seed).float()
    return out
