"""Trainability: the k fit on constructed data, and a tiny grid end to end through the CLIs with its verdict rows."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.analysis.claims import trainability as T
from empirical.predict import main as predict_main
from empirical.run import main as run_main


@settings(max_examples=30, deadline=None)
@given(k=st.floats(0.5, 20), xis=st.lists(st.floats(0.3, 50), min_size=2, max_size=6),
       depths=st.lists(st.integers(1, 200), min_size=2, max_size=6, unique=True))
def test_fit_k_recovers_a_separating_threshold(k, xis, depths):
    """Cells labelled by the rule L ≤ k·ξ_c itself: the fit agrees with all of them, and its k separates them."""
    d = np.array([L for L in depths for _ in xis], float)
    xi = np.array([x for _ in depths for x in xis], float)
    trained = d <= k * xi
    fit = T.fit_k(d, xi, trained)
    assert fit.agreement == 1.0
    assert np.array_equal((d / xi) <= fit.k, trained) or fit.censored


def test_fit_k_on_inf_and_nan_depth_scales():
    d = np.array([5, 50, 5, 50, 5.0])
    xi = np.array([1.0, 1.0, math.inf, math.inf, math.nan])
    fit = T.fit_k(d, xi, np.array([True, False, True, True, False]))
    assert fit.agreement == 1.0 and 5 <= fit.k < 50          # the nan cell is left out, ξ_c = ∞ always trains
    assert T.constant_depth_agreement(d[:4], np.array([True, False, True, True])) == 0.75


def test_bootstrap_is_degenerate_when_seeds_agree():
    d = np.array([4, 8, 16, 32.0])
    xi = np.full(4, 3.0)
    m = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]], float)
    ks = T.bootstrap_k(d, xi, m, n=50)
    fit = T.fit_k(d, xi, m[:, 0] > 0)
    assert np.allclose(ks[:, 0], fit.k)
    assert T.k_interval(ks) == (8 / 3, 16 / 3) == (fit.lo, fit.hi)      # the whole gap between L/ξ_c = 8/3 and 16/3


def test_tiny_grid_end_to_end_through_the_cli(tmp_path, capsys):
    """2 depths × 3 σ_w², one activation, through ``empirical.run`` and ``empirical.predict``: every trainability
    claim has a row with a verdict, the derived tables and the correlation measurement are written."""
    code = run_main(["--preset", "trainability", "--out-dir", str(tmp_path), "--name", "tiny", "--activation", "tanh",
                     "--depths", "2,6", "--sigma-w2", "0.5,1.75,3.0", "--seeds", "1,2", "--train-size", "320",
                     "--epochs", "2", "--no-progress", "--quiet"])
    assert code == 0
    folder = tmp_path / "tiny"
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 12 and set(runs["sigma_w2"]) == {0.5, 1.75, 3.0} and set(runs["depth"]) == {2, 6}
    assert set(runs["dataset"]) == {"mnist1d"}
    corr = pd.read_csv(folder / "correlation.csv")
    assert set(corr["sigma_w2"]) == {0.5, 3.0} and corr["layer"].max() == 6
    assert predict_main([str(tmp_path), "--quiet"]) == 0
    pred = pd.read_csv(tmp_path / "predictions.csv")
    mine = pred[pred["claim"].isin(T.CLAIM_NAMES)]
    assert set(mine["claim"]) == set(T.CLAIM_NAMES)
    assert mine["verdict"].isin(["held", "failed", "inconclusive", "not applicable"]).all()
    assert (mine["claim"] == "max_trainable_depth").sum() == 3
    assert (folder / "trainability_cells.csv").is_file() and (folder / "correlation_profiles.csv").is_file()
    cells = pd.read_csv(folder / "trainability_cells.csv")
    assert len(cells) == 6 and cells["xi_c"].notna().all()


def _cell_runs(rule, sigma_w2s, depths, seeds=(1, 2, 3), act="relu", sigma_b2=0.05) -> pd.DataFrame:
    """Runs whose every seed trains (accuracy 0.9) or not (0.1) as ``rule(σ_w², L)`` says."""
    rows = [dict(init="gaussian", activation=act, sigma_w2=w, depth=L, seed=s, sigma_b2=sigma_b2, widths="64",
                 status="finished", final_test_acc=0.9 if rule(w, L) else 0.1)
            for w in sigma_w2s for L in depths for s in seeds]
    return pd.DataFrame(rows)


def test_rule_on_the_finite_depth_scale_cells_is_its_own_claim():
    """ReLU cells: those with finite ξ_c (σ_w² < 2) train iff L ≤ 3·ξ_c; those with ξ_c = ∞ (q* → ∞) train only
    shallow. The rule over all cells fails; restricted to its precondition (finite ξ_c) it holds with agreement 1."""
    sig, depths = (1.0, 1.5, 1.9, 2.5, 3.0), (2, 5, 12, 40, 80)
    rule = lambda w, L: L <= 3 * T.xi_c("relu", w, 0.05) if w < 2 else L <= 5  # noqa: E731
    claims = {c.claim: c for c in T.trainability_claims("s", _cell_runs(rule, sig, depths), n_boot=50)
              if c.activation == "relu"}
    region, finite = claims["trainable_region"], claims["trainable_region_finite_xi"]
    assert region.verdict == "failed" and region.measured < T.AGREEMENT_MIN
    assert finite.verdict == "held" and finite.measured == 1.0
    assert finite.detail.startswith("15 of 25 cells have a finite ξ_c")


def test_rule_with_every_depth_scale_finite_is_not_applicable_restricted():
    sig, depths = (0.5, 1.0, 1.5), (2, 5, 12, 40)
    rule = lambda w, L: L <= 3 * T.xi_c("tanh", w, 0.05)  # noqa: E731
    claims = {c.claim: c for c in T.trainability_claims("s", _cell_runs(rule, sig, depths, act="tanh"), n_boot=50)}
    assert claims["trainable_region"].verdict == "held"
    assert claims["trainable_region_finite_xi"].verdict == "not applicable"
    assert "every cell has a finite ξ_c" in claims["trainable_region_finite_xi"].reason
