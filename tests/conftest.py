"""Shared fixtures: a tiny real study written by the engine itself (once per test session) for the report tests."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

TINY_STUDY = ["--depth", "6", "--width", "32", "--epochs", "2", "--seeds", "1,2", "--init", "he",
              "--activation", "relu,tanh,sigmoid,selu", "--probe-size", "128", "--probe-every", "5",
              "--name", "tiny", "--no-progress", "--no-act-timing", "--quiet"]


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> Path:
    """A results root holding the study ``tiny`` (MLP, depth 6, 4 activations, 2 seeds) trained by
    ``python -m empirical.run`` and ``predictions.csv`` written by ``python -m empirical.predict``.

    Read-only for tests: copy it before changing anything.
    """
    from empirical import predict, run

    root = tmp_path_factory.mktemp("real-results")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run.main([*TINY_STUDY, "--out-dir", str(root)]) == 0
        assert predict.main([str(root), "--quiet"]) == 0
    return root
