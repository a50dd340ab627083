"""theory.init, the one init table, against PyTorch's own initialisers (variance of the drawn weights)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from theory import init as I
from theory import meanfield


@settings(max_examples=25, deadline=None)
@given(fan_in=st.integers(1, 4096), fan_out=st.integers(1, 4096))
def test_table_matches_pytorch_variances(fan_in, fan_out):
    """Var W = σ_w²/fan_in for torch's kaiming_normal_ (relu gain), xavier_normal_ and nn.Linear's default."""
    w = torch.empty(fan_out, fan_in)
    fi, fo = torch.nn.init._calculate_fan_in_and_fan_out(w)
    he = torch.nn.init.calculate_gain("relu") ** 2 / fi
    xavier = 2.0 / (fi + fo)
    default = (1 / math.sqrt(fi)) ** 2 / 3          # U(±a) has variance a²/3, a = 1/√fan_in (kaiming_uniform, a=√5)
    assert I.sigmas("he", fan_in, fan_out)[0] / fan_in == pytest.approx(he, rel=1e-12)
    assert I.sigmas("kaiming", fan_in, fan_out) == I.sigmas("he", fan_in, fan_out)
    assert I.sigmas("xavier", fan_in, fan_out)[0] / fan_in == pytest.approx(xavier, rel=1e-12)
    assert I.sigmas("glorot", fan_in, fan_out) == I.sigmas("xavier", fan_in, fan_out)
    assert I.sigmas("default", fan_in, fan_out) == pytest.approx((default * fan_in, default))
    assert I.sigmas("torch_default", fan_in, fan_out) == I.sigmas("default", fan_in, fan_out)


def test_critical_gaussian_and_errors(monkeypatch):
    assert I.sigmas("critical", 10, 20, act="tanh", sigma_b2=0.05) == (
        pytest.approx(float(meanfield.critical_sigma_w2("tanh", 0.05))), 0.05)
    assert I.sigmas("gaussian", 3, 4, sigma_w2=1.7, sigma_b2=0.2) == (1.7, 0.2)
    monkeypatch.setattr(meanfield, "critical_sigma_w2", lambda act, sb2: float("nan"))   # no edge of chaos
    with pytest.raises(ValueError, match="no edge of chaos"):
        I.sigmas("critical", 10, 10, act="tanh", sigma_b2=0.123)
    with pytest.raises(ValueError, match="allowed"):
        I.sigmas("orthogonal", 10, 10)
    with pytest.raises(ValueError, match="positive sigma_w2"):
        I.sigmas("gaussian", 10, 10)
    assert meanfield.init_sigma_w2("xavier") == 1.0     # theory's square-layer view of the same table


def test_critical_init_must_be_reached_from_the_networks_own_q1():
    """mish's edge at σ_b² = 0.1 (σ_w² = 2.00685, q* = 1.7716) is found from q = 1, but a network with normalised
    inputs starts at q_1 = σ_w² + σ_b² = 2.107, above the unstable root 2.09: q_l → ∞ and χ₁ → 1.003, not 1.
    Iterating the length map from q_1 confirms it; tanh's edge at σ_b² = 0.05 is reached from its q_1."""
    from theory import meanfield as mf
    w, b = 2.0068545696463875, 0.1
    q = w + b
    for _ in range(3000):
        q = mf.length_map("mish", q, w, b)
    assert q > 100
    with pytest.raises(ValueError, match="not reached from the first layer's q_1"):
        I.critical_sigma_w2("mish", 0.1)
    assert I.critical_sigma_w2("tanh", 0.05) == pytest.approx(1.7609546, rel=1e-6)
