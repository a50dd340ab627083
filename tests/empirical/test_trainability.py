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


# ----------------------------------------------------------------------------------------------- verdict rules

def _corr_frame(act="tanh", w=0.5, b=0.05, c0=0.2, depth=12, width=1000, seeds=(1, 2, 3, 4, 5),
                c_of=None, q_of=None):
    """correlation.csv rows that follow the maps exactly, unless ``c_of(seed, l, c_map)``/``q_of(seed, l, q_map)``
    say otherwise."""
    q, c = T.predicted_profiles(act, w, b, c0, depth)
    rows = []
    for s in seeds:
        for l in range(1, depth + 1):
            rows.append(dict(activation=act, sigma_w2=w, sigma_b2=b, seed=s, c0=c0, layer=l,
                             q=q_of(s, l, q[l - 1]) if q_of else q[l - 1],
                             c=c_of(s, l, c[l - 1]) if c_of else c[l - 1], pairs=8, width=width))
    return pd.DataFrame(rows)


def _claims(corr, name):
    return [c for c in T.correlation_claims("s", T.correlation_summary(corr), corr) if c.claim == name]


def test_correlation_map_judges_every_layer():
    """A layer with a smaller deviation but an interval across the tolerance makes the claim inconclusive, even
    though the layer that deviates most lies well inside; one layer wholly outside makes it failed."""
    spread = {1: -0.03, 2: 0.03, 3: -0.03, 4: 0.03, 5: 0.0}

    def straddle(s, l, c):
        return c + (0.03 if l == 3 else 0.0) + (0.02 + spread[s] if l == 6 else 0.0)

    (cl,) = _claims(_corr_frame(c_of=straddle), "correlation_map")
    assert cl.verdict == T.INCONCLUSIVE and "1 of 12 layers straddle" in cl.reason and "layer 6" in cl.reason
    assert "seeds would decide" in cl.reason

    (cl,) = _claims(_corr_frame(c_of=lambda s, l, c: c + (0.03 if l == 3 else 0.0)), "correlation_map")
    assert cl.verdict == T.HELD and cl.measured - cl.predicted == pytest.approx(0.03)

    (cl,) = _claims(_corr_frame(c_of=lambda s, l, c: c + (0.2 if l == 9 else 0.0) + 0.001 * s), "correlation_map")
    assert cl.verdict == T.FAILED and "layer 9" in cl.reason


def test_length_map_is_judged_by_the_interval_over_seeds():
    """The same seed-mean log ratio (≈ 0) is held when the seeds agree and inconclusive when they scatter."""
    tol = 0.1 + math.sqrt(12 / 1000)
    (cl,) = _claims(_corr_frame(q_of=lambda s, l, q: q * math.exp(0.01 * (s - 3))), "length_map")
    assert cl.verdict == T.HELD and cl.n == 5 and cl.tolerance == pytest.approx(tol)
    (cl,) = _claims(_corr_frame(q_of=lambda s, l, q: q * math.exp(0.3 * (s - 3))), "length_map")
    assert cl.verdict == T.INCONCLUSIVE and abs(cl.measured) < 1e-12 and cl.lo < -tol < tol < cl.hi
    (cl,) = _claims(_corr_frame(q_of=lambda s, l, q: 3 * q * math.exp(0.01 * (s - 3))), "length_map")
    assert cl.verdict == T.FAILED and cl.measured == pytest.approx(math.log(3))


def test_correlation_depth_scale_is_compared_with_the_map_over_the_same_layers():
    """Measured c_l that follow the map exactly hold against the map's own rate over the window, although that
    rate (≈ 2.1 layers for tanh at σ_w² = 0.5) is far from ξ_c at q* (1.19); a decay twice as fast fails."""
    (cl,) = _claims(_corr_frame(c0=0.9, c_of=lambda s, l, c: 1 - (1 - c) * (1 + 0.01 * (s - 3))),
                    "correlation_depth_scale")
    assert cl.verdict == T.HELD and cl.n == 5
    assert cl.measured == pytest.approx(cl.predicted, rel=1e-6) and cl.predicted > 1.5 * T.xi_c("tanh", 0.5, 0.05)
    assert "ξ_c(q*) = 1.19" in cl.detail

    def fast(s, l, c):                        # the distance to c* = 1 at layer l is the map's at layer 2l
        _, cm = T.predicted_profiles("tanh", 0.5, 0.05, 0.9, 40)
        return 1 - (1 - cm[2 * l - 1]) * (1 + 0.01 * (s - 3))

    (cl,) = _claims(_corr_frame(c0=0.9, c_of=fast), "correlation_depth_scale")
    assert cl.verdict == T.FAILED and cl.measured < cl.predicted / 1.3


def _runs(act, cells, seeds=(1, 2, 3)):
    """runs.csv rows for (σ_w², depth, trained) cells at σ_b² = 0.05."""
    rows = []
    for w, d, ok in cells:
        for s in seeds:
            rows.append(dict(activation=act, sigma_w2=w, sigma_b2=0.05, depth=d, seed=s, init="gaussian",
                             status="finished", final_test_acc=0.9 if ok else 0.1, widths="64"))
    return pd.DataFrame(rows)


def test_max_trainable_depth_without_a_finite_fixed_point_is_not_applicable():
    """relu at σ_w² = 2.5 has q* = ∞ (ξ_c = ∞ by convention): L_max there is no test of k·ξ_c."""
    from empirical.analysis.theory_bridge import q_star
    assert math.isinf(q_star("relu", 2.5, 0.05, 2.55)) and math.isinf(T.xi_c("relu", 2.5, 0.05))
    runs = _runs("relu", [(w, d, d <= (4 if w == 1.0 else 16 if w == 1.5 else 8)) for w in (1.0, 1.5, 2.5)
                          for d in (2, 4, 8, 16, 32)])
    lm = {c.setting.split()[0]: c for c in T.trainability_claims("s", runs, steps=100, n_boot=20)
          if c.claim == "max_trainable_depth"}
    assert lm["sigma_w2=2.5"].verdict == T.NOT_APPLICABLE and "q* = ∞" in lm["sigma_w2=2.5"].reason
    assert lm["sigma_w2=1"].verdict in (T.HELD, T.FAILED)


def test_max_trainable_depth_with_a_censored_k_is_inconclusive():
    """Every cell trained: the grid only bounds k from above, so no L_max can test k·ξ_c."""
    runs = _runs("tanh", [(w, d, True) for w in (0.5, 1.0) for d in (2, 4)])
    out = T.trainability_claims("s", runs, steps=100, n_boot=20)
    lm = [c for c in out if c.claim == "max_trainable_depth"]
    assert len(lm) == 2 and all(c.verdict == T.INCONCLUSIVE and "only bounds k" in c.reason for c in lm)


def test_trainable_depth_k_without_a_finite_interval_is_not_applicable(monkeypatch):
    monkeypatch.setattr(T, "xi_c", lambda *a, **k: math.nan)
    runs = _runs("tanh", [(w, d, d <= 4) for w in (0.5, 1.0) for d in (2, 4, 8)])
    (k,) = [c for c in T.trainability_claims("s", runs, steps=20_000, n_boot=20) if c.claim == "trainable_depth_k"]
    assert k.verdict == T.NOT_APPLICABLE
