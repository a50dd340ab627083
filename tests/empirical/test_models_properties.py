"""Property tests of the engine's own kernels against plain PyTorch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.models import max_pool2

# ties (1, 1; 0, −0), NaN, ±∞ and a subnormal: where two pooling kernels could pick different maxima or indices
VALUES = (0.0, -0.0, 1.0, 2.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-40)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.int64 if t.dtype == torch.float64 else torch.int32)


@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 4), c=st.integers(1, 17), h=st.integers(2, 9), w=st.integers(2, 9),
       double=st.booleans(), seed=st.integers(0, 2 ** 31 - 1), tied=st.booleans())
def test_max_pool2_equals_torch_max_pool_bit_for_bit(b, c, h, w, double, seed, tied):
    """Values, input gradients and the gradients of those gradients (as the sharpness's Hessian-vector products
    take them) of ``max_pool2`` equal ``F.max_pool2d(h, 2)``'s bit for bit, odd sizes included."""
    dtype = torch.float64 if double else torch.float32
    g = torch.Generator().manual_seed(seed)
    if tied:
        x = torch.tensor(VALUES, dtype=dtype)[torch.randint(0, len(VALUES), (b, c, h, w), generator=g)]
    else:
        x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    grad = torch.randn(b, c, h // 2, w // 2, generator=g, dtype=dtype, requires_grad=True)
    out = {}
    for name, pool in (("torch", lambda t: F.max_pool2d(t, 2)), ("ours", max_pool2)):
        xx = x.clone().requires_grad_()
        y = pool(xx)
        (gx,) = torch.autograd.grad(y, xx, grad, create_graph=True)
        (ggrad,) = torch.autograd.grad((gx * x.nan_to_num(0.5)).sum(), grad)
        out[name] = (y, gx, ggrad)
    for ours, ref in zip(out["ours"], out["torch"]):
        assert ours.shape == ref.shape and ours.is_contiguous()
        assert torch.equal(_bits(ours), _bits(ref))
