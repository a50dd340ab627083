"""The reading layer's statistics against scipy / published values, and the verdict matrix's cells."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from empirical.analysis import report_findings as rf


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=12))
def test_t_interval_equals_scipy(xs):
    m, lo, hi, n = rf.t_interval(xs)
    x = np.asarray(xs)
    if x.std(ddof=1) == 0:
        assert lo == hi == m
        return
    want = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (lo, hi) == pytest.approx(want, rel=1e-9, abs=1e-9) and n == len(x)


def test_wilson_and_fisher_known_values():
    lo, hi = rf.wilson(5, 10)                      # Wilson score interval, z = 1.96
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = rf.fisher_interval(0.5, 28)           # tanh(atanh(0.5) ± 1.96/5)
    assert (lo, hi) == pytest.approx((np.tanh(np.arctanh(0.5) - 0.392), np.tanh(np.arctanh(0.5) + 0.392)))
    assert np.isnan(rf.fisher_interval(0.5, 3)[0])


def test_bootstrap_median_brackets_the_median():
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 1.0, 200)
    med, lo, hi = rf.bootstrap_median(v)
    assert lo < med < hi and lo < 3.0 < hi and med == pytest.approx(np.median(v))


def test_verdict_matrix_cells_and_links():
    pred = pd.DataFrame({
        "study": "s", "kind": "prediction", "claim": ["c1", "c1", "c1", "c2"],
        "activation": ["relu", "relu", "tanh", "tanh"], "setting": ["a", "b", "a", "a"],
        "verdict": ["held", "failed", "held", "not applicable"]}, index=[10, 11, 12, 13])
    html = rf.verdict_matrix(pred, "s")
    assert 'actlab-cell-mixed"><a href="#v-s-10"' in html          # relu/c1: one held, one failed
    assert 'actlab-cell-held"><a href="#v-s-12"' in html
    assert 'actlab-cell-na"><a href="#v-s-13"' in html
    assert html.count("actlab-cell-empty") == 1                       # relu has no c2 row


def test_trainability_finding_reads_k_and_the_finite_cells_from_their_own_rows(tmp_path):
    """k and its interval come from ``trainable_depth_k``, the agreement where ξ_c is finite from
    ``trainable_region_finite_xi``; the headline says ξ_c sets trainable depth only when every decided claim held."""
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "trainability_heatmaps.png").write_bytes(b"png")
    (tmp_path / "tr").mkdir()
    pd.DataFrame({"seed": [1, 2, 3]}).to_csv(tmp_path / "tr" / "runs.csv", index=False)
    nan = float("nan")
    pred = pd.DataFrame({
        "study": "tr", "kind": "prediction",
        "claim": ["trainable_region", "trainable_depth_k", "trainable_region_finite_xi"] * 2,
        "activation": ["tanh"] * 3 + ["relu"] * 3,
        "measured": [0.933, 3.45, nan, 0.707, 5.05, 0.967],
        "lo": [nan, 3.36, nan, nan, 2.77, nan], "hi": [nan, 5.3, nan, nan, 6.41, nan],
        "verdict": ["held", "not applicable", "not applicable", "failed", "not applicable", "held"]})
    f = rf.finding_trainability(pred, tmp_path, {"tr": tmp_path / "fig"})
    assert "tanh 0.933 (held; k = 3.45 (95 % interval 3.36–5.3))" in f.text
    assert "relu 0.707 (failed; k = 5.05 (95 % interval 2.77–6.41); 0.967 (held) where $\\xi_c$ is finite)" in f.text
    assert "(relu at large" in f.text and f.title.startswith("How deep a network trains is set by")
    pred.loc[5, "verdict"] = "failed"
    assert rf.finding_trainability(pred, tmp_path, {"tr": tmp_path / "fig"}).title.endswith("against the correlation "
                                                                                             "depth scale $\\xi_c$.")


def test_trainability_and_sharpness_prose_has_no_literal_subscripts(tmp_path):
    """The shipped trainability study's section and the claims tables of the convergence page, built from the
    shipped predictions: every "ξ_c", "σ_w²", "λ_max" is math, none is left as text with its underscore."""
    import re
    from pathlib import Path

    from empirical.analysis import trainability_report
    from empirical.analysis.results_schema import read_csv

    root = Path(__file__).resolve().parents[2] / "results"
    pred = read_csv(root / "predictions.csv")
    if pred is None or not (root / "trainability" / "runs.csv").is_file():
        pytest.skip("the shipped results are not in this checkout")
    (tmp_path / "trainability_heatmaps.png").write_bytes(b"png")
    text = trainability_report.section(root / "trainability", tmp_path, "figures/trainability", pred)
    text += trainability_report.overview([root / "trainability"])
    text += rf._claims_table(pred[pred["claim"].astype(str).str.startswith("sharpening reaches")])
    assert "ξ" in text and "trainable_region_finite_xi" in text
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("!["))
    prose = re.sub(r"\$[^$]*\$", "", prose)
    bad = re.findall(r"(?<![A-Za-z0-9_])[A-Za-zα-ωΑ-Ω]_(?:[A-Za-z0-9]{1,3}|\{)(?![A-Za-z0-9_])", prose)
    assert not bad, bad[:10]
