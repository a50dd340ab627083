"""The one init table: (scheme, fan_in, fan_out) → (σ_w², σ_b²), used by the engine, the theory and the report.

Convention: Var(W_ij) = σ_w²/fan_in and Var(b_i) = σ_b² (a convolution's fan_in/fan_out count the kernel:
channels × k²). Schemes:

- ``default`` (alias ``torch_default``): PyTorch's nn.Linear/nn.Conv2d, W and b ~ U(±1/√fan_in):
  σ_w² = fan_in · 1/(3 fan_in) = 1/3, σ_b² = 1/(3 fan_in).
- ``he`` (``kaiming``): σ_w² = 2, σ_b² = 0.
- ``xavier`` (``glorot``): Var W = 2/(fan_in + fan_out), so σ_w² = 2 fan_in/(fan_in + fan_out) (1 only for
  square layers), σ_b² = 0.
- ``glorot_uniform``: Keras' default, W ~ U(±√(6/(fan_in+fan_out))), zero biases: the same σ's as xavier.
- ``lecun``: σ_w² = 1, σ_b² = 0 (SELU's init).
- ``critical``: the edge of chaos χ₁(q*) = 1 at the given σ_b² (``theory.meanfield.critical_sigma_w2``), checked to
  be reached from the network's own q_1 = σ_w² + σ_b² (normalised inputs), else a ValueError.
- ``gaussian``: the given σ_w² and σ_b².
"""
from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["SCHEMES", "ALIASES", "canonical", "sigmas", "critical_sigma_w2", "torch_default_sigma_b2"]

SCHEMES = ("default", "he", "xavier", "glorot_uniform", "lecun", "critical", "gaussian")
ALIASES = {"torch_default": "default", "kaiming": "he", "glorot": "xavier"}


def canonical(scheme: str) -> str:
    """The scheme's name in ``SCHEMES`` (aliases and case folded); ValueError names the allowed ones."""
    key = str(scheme).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; allowed: {', '.join(SCHEMES + tuple(ALIASES))}")
    return key


def torch_default_sigma_b2(fan_in: int) -> float:
    """Var b of PyTorch's default bias, U(±1/√fan_in): 1/(3·fan_in)."""
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    return 1.0 / (3.0 * fan_in)


@lru_cache(maxsize=None)
def _critical(act, sigma_b2: float) -> float:
    from theory import meanfield
    from theory.activations import lookup

    phi = lookup(act) if isinstance(act, str) else act
    name = act if isinstance(act, str) else phi.name
    value = float(meanfield.critical_sigma_w2(phi, sigma_b2))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"activation '{name}' has no edge of chaos at sigma_b2={sigma_b2:g}; use another --init")
    # the edge is found from q = 1; the network starts at its own q_1 = σ_w²·mean(x²) + σ_b² (mean(x²) = 1
    # for normalised inputs), which must reach the same χ₁ = 1 (mish at σ_b² = 0.1 jumps past q* to ∞ from there)
    q1 = value + sigma_b2
    chi = meanfield.chi1(phi, meanfield.fixed_point(phi, value, sigma_b2, q1), value)
    if not abs(chi - 1.0) <= 1e-6:
        raise ValueError(f"activation '{name}': the edge of chaos at sigma_b2={sigma_b2:g} (sigma_w2={value:.6g}) is "
                         f"not reached from the first layer's q_1 = sigma_w2 + sigma_b2 = {q1:.4g} (chi_1 -> "
                         f"{chi:.4g}); use another --init or sigma_b2")
    return value


def critical_sigma_w2(act, sigma_b2: float) -> float:
    """σ_w² at the edge of chaos of ``act`` (name or Activation) at ``sigma_b2``; ValueError where there is none."""
    return _critical(act, float(sigma_b2))


def sigmas(scheme: str, fan_in: int, fan_out: int, *, act=None, sigma_b2: float = 0.0,
           sigma_w2: float | None = None) -> tuple[float, float]:
    """(σ_w², σ_b²) of one layer under ``scheme`` (see the module docstring); ``act`` for critical,
    ``sigma_b2`` for critical and gaussian, ``sigma_w2`` for gaussian."""
    key = canonical(scheme)
    if key == "default":
        return 1.0 / 3.0, torch_default_sigma_b2(fan_in)
    if key == "he":
        return 2.0, 0.0
    if key in ("xavier", "glorot_uniform"):
        return 2.0 * fan_in / (fan_in + fan_out), 0.0
    if key == "lecun":
        return 1.0, 0.0
    if key == "critical":
        if act is None:
            raise ValueError("init scheme 'critical' needs an activation")
        return critical_sigma_w2(act, sigma_b2), float(sigma_b2)
    if sigma_w2 is None or not sigma_w2 > 0:
        raise ValueError(f"init 'gaussian' needs a positive sigma_w2, got {sigma_w2!r}")
    return float(sigma_w2), float(sigma_b2)
