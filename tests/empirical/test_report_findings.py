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


def test_a_failed_order_claim_prints_the_inequality_that_holds():
    assert rf._order_verdict(0.35, {"relu": 0.17, "silu": 0.2}, larger=False) == (
        "failed", "TeLU 0.35 > best peer 0.17")
    assert rf._order_verdict(0.1, {"relu": 0.17}, larger=False)[1] == "TeLU 0.1 ≤ best peer 0.17"
    assert rf._order_verdict(0.1, {"relu": 0.17}, larger=True)[1] == "TeLU 0.1 < best peer 0.17"


def test_runs_summary_pools_seeds_only_never_a_sigma_w2_grid():
    """Gaussian-init grid runs: one row per (σ_w², depth) with its seeds, not σ_w² values pooled into one sd."""
    from empirical.analysis.report_pages import _runs_summary
    rows = [dict(activation="relu", init="gaussian", sigma_w2=w, sigma_b2=0.05, depth=d, seed=s, status="finished",
                 final_test_acc=acc + 0.01 * s, time_per_epoch_s=0.1)
            for w, acc in ((0.5, 0.1), (2.0, 0.9)) for d in (4, 16) for s in (1, 2, 3)]
    table = _runs_summary(pd.DataFrame(rows))
    body = [line for line in table.splitlines()[2:]]
    assert len(body) == 4 and "relu [sigma_w2=0.5 depth=4] | 3 |" in body[0] and "depth=16" in body[1]
    assert "0.12 ± 0.01" in body[0] and "0.92 ± 0.01" in body[2]
    assert "s / epoch (share of the batched group)" in table.splitlines()[0]


def test_plateau_finding_lists_every_study_with_the_claim(tmp_path):
    """The headline study draws the figure; a larger study without the figure is still listed, with both claims."""
    for name, n in (("small", 30), ("big", 300)):
        (tmp_path / "results" / name).mkdir(parents=True)
        pd.DataFrame({"run_id": range(n), "seed": 1}).to_csv(tmp_path / "results" / name / "runs.csv", index=False)
    fig = tmp_path / "figs" / "small"
    fig.mkdir(parents=True)
    (fig / "plateaus.png").write_bytes(b"")
    fall, rise = "plateau steps fall as ‖∂L/∂W₁‖ at init rises", "plateau steps rise with the saturated fraction at init"
    pred = pd.DataFrame({"study": ["small", "small", "big", "big"], "kind": "hypothesis",
                         "claim": [fall, rise, fall, rise], "activation": "all", "setting": "all runs",
                         "measured": [-0.5, 0.4, -0.15, -0.08], "n": [30, 30, 300, 300],
                         "verdict": ["held", "held", "held", "failed"]})
    f = rf.finding_plateaus(pred, tmp_path / "results", {"small": fig})
    assert "Across the 30 runs of `small`" in f.text
    assert "`big` (300 runs) ρ = -0.15, held; saturated fraction ρ = -0.08, failed" in f.text
    rec = rf.recommendations_md(pred, [])
    assert "-0.15 (`big`, 300 runs, held); -0.5 (`small`, 30 runs, held)" in rec
