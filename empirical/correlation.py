"""Correlation propagation at initialisation: pairs of inputs of correlation c₀ through random deep nets.

Inputs x_a, x_b ∈ ℝⁿ are drawn with mean(x²) = 1 and mean(x_a x_b) = c₀ exactly (Gram–Schmidt). A net with
z_l = W_l h_{l−1} + b_l, h_l = φ(z_l), h_0 = x, W_l ~ N(0, σ_w²/n), b_l ~ N(0, σ_b²), n units per layer
gives, per layer l = 1..depth,

    q_l = (‖z_lᵃ‖² + ‖z_lᵇ‖²) / (2n)            (the length map's q_l)
    c_l = z_lᵃ · z_lᵇ / (‖z_lᵃ‖ ‖z_lᵇ‖)          (the correlation map's c_l)

averaged over ``pairs`` input pairs per network. Mean-field theory starts from q_1 = σ_w² + σ_b² and
c_1 = (σ_w² c₀ + σ_b²) / q_1 and iterates the length and correlation maps; finite width adds O(1/n).

Networks with different σ_w² but the same seed share their standard-normal draws (W_l = √(σ_w²/n) G_l),
so the σ_w² axis is smooth; all σ_w² × seeds of one activation run as one batched float64 program.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from empirical.models import torch_activation
from theory import activations as registry

COLUMNS = ("activation", "sigma_w2", "sigma_b2", "seed", "c0", "layer", "q", "c", "pairs", "width")


@dataclass(frozen=True)
class CorrelationSpec:
    """What to measure: every activation × σ_w² × seed × c₀, layers 1..depth of width-n nets."""

    activations: tuple[str, ...]
    sigma_w2s: tuple[float, ...]
    sigma_b2: float
    c0s: tuple[float, ...] = (0.2, 0.9)
    depth: int = 50
    width: int = 256
    seeds: tuple[int, ...] = (1, 2, 3)
    pairs: int = 8


def input_pairs(c0: float, n: int, pairs: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` pairs (x_a, x_b) in ℝⁿ with mean(x_a²) = mean(x_b²) = 1 and mean(x_a x_b) = c₀ exactly."""
    if not -1.0 <= c0 <= 1.0:
        raise ValueError(f"c0 must lie in [-1, 1], got {c0}")
    g = torch.randn(pairs, 2, n, generator=gen, dtype=torch.float64)
    a = g[:, 0] / g[:, 0].norm(dim=1, keepdim=True)
    b = g[:, 1] - (g[:, 1] * a).sum(1, keepdim=True) * a
    b = b / b.norm(dim=1, keepdim=True)
    s = math.sqrt(n)
    return s * a, s * (c0 * a + math.sqrt(max(0.0, 1.0 - c0 * c0)) * b)


@torch.no_grad()
def measure_activation(act: str, sigma_w2s: Sequence[float], sigma_b2: float, c0s: Sequence[float],
                       depth: int, width: int, seeds: Sequence[int], pairs: int = 8,
                       device: str | torch.device = "cpu") -> list[dict]:
    """Tidy rows (see ``COLUMNS``) for one activation: one per σ_w², seed, c₀ and layer."""
    a = registry.lookup(act)
    fn = torch_activation(a)
    n, S, W = int(width), len(seeds), len(sigma_w2s)
    scale = torch.tensor([math.sqrt(w / n) for w in sigma_w2s], dtype=torch.float64, device=device)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    xs = []
    for g in gens:
        per_c = [input_pairs(c0, n, pairs, g) for c0 in c0s]
        xs.append(torch.cat([torch.cat([xa, xb]) for xa, xb in per_c]))
    # h: [S, W, K·2·P, n] with rows ordered (c0, side, pair)
    h = torch.stack(xs).to(device).unsqueeze(1).expand(S, W, -1, -1)
    sb = math.sqrt(sigma_b2)
    rows = []
    K = len(c0s)
    for layer in range(1, depth + 1):
        G = torch.stack([torch.randn(n, n, generator=g, dtype=torch.float64) for g in gens]).to(device)
        B = torch.stack([torch.randn(n, generator=g, dtype=torch.float64) for g in gens]).to(device)
        z = torch.matmul(h, G.unsqueeze(1) * scale.view(1, W, 1, 1)) + sb * B.view(S, 1, 1, n)
        zz = z.view(S, W, K, 2, pairs, n)
        za, zb = zz[:, :, :, 0], zz[:, :, :, 1]
        na, nb = (za * za).sum(-1), (zb * zb).sum(-1)
        q = ((na + nb) / (2 * n)).mean(-1)
        c = ((za * zb).sum(-1) / torch.sqrt(na * nb)).mean(-1)
        q, c = q.cpu(), c.cpu()
        for si, seed in enumerate(seeds):
            for wi, w in enumerate(sigma_w2s):
                for ki, c0 in enumerate(c0s):
                    qv, cv = float(q[si, wi, ki]), float(c[si, wi, ki])
                    rows.append({"activation": a.name, "sigma_w2": float(w), "sigma_b2": float(sigma_b2),
                                 "seed": int(seed), "c0": float(c0), "layer": layer,
                                 "q": qv if math.isfinite(qv) else None, "c": cv if math.isfinite(cv) else None,
                                 "pairs": pairs, "width": n})
        h = fn(z)
    return rows


def measure(spec: CorrelationSpec, device: str | torch.device = "cpu") -> list[dict]:
    """``measure_activation`` for every activation of ``spec``, concatenated."""
    out = []
    for act in spec.activations:
        out += measure_activation(act, spec.sigma_w2s, spec.sigma_b2, spec.c0s, spec.depth, spec.width,
                                  spec.seeds, spec.pairs, device)
    return out


MAX_DEPTH = 30


def spec_for_study(cfg) -> CorrelationSpec:
    """The measurement that goes with a study: its activations, every other σ_w² of its grid, its σ_b² and
    seeds, as deep as its deepest net up to ``MAX_DEPTH`` layers (c_l has settled by then wherever ξ_c is
    finite and small; the mean-field iteration it is compared with costs ~0.05 s per layer), ≥ 256 units wide."""
    depth = max(cfg.depths) if cfg.depths else len(cfg.widths)
    return CorrelationSpec(activations=tuple(cfg.activations), sigma_w2s=tuple(float(w) for w in cfg.sigma_w2s[::2]),
                           sigma_b2=float(cfg.sigma_b2), depth=min(depth, MAX_DEPTH), width=max(256, cfg.widths[0]),
                           seeds=tuple(cfg.seeds))
