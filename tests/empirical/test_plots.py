"""empirical.analysis.figures: pure figure functions (frames in, PNG + SVG out), one colour per activation."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from empirical.analysis import figures as plots  # noqa: E402
from empirical.analysis.results_schema import ACTIVATION_ORDER  # noqa: E402
from theory.activations import get  # noqa: E402


def _ok(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2_000
    assert svg.read_text()[:200].lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_colours_fixed_distinct_and_alias_aware():
    builtin = [plots.color_for(n) for n in plots.COLORS]
    assert tuple(plots.COLORS) == ACTIVATION_ORDER
    assert len(set(builtin)) == len(builtin)
    assert plots.color_for("swish") == plots.color_for("silu") == plots.color_for("silu(beta=1)")
    assert plots.color_for("Leaky-ReLU") == plots.COLORS["leaky_relu"]
    user = plots.color_for("x*erf(x)")
    assert user == plots.color_for("x*erf(x)") and user not in builtin


def test_activation_frame_breaks_derivative_at_kink():
    df = plots.activation_frame([get("relu")], np.linspace(-1, 1, 11), orders=(0, 1))
    d1 = df[df["order"] == 1]
    assert d1.loc[d1["x"] == 0.0, "value"].isna().all()
    assert (d1.loc[d1["x"] < -1e-6, "value"] == 0).all() and (d1.loc[d1["x"] > 1e-6, "value"] == 1).all()
    d0 = df[df["order"] == 0]
    assert d0["value"].notna().all() and d0.loc[d0["x"] == 0.0, "value"].iloc[0] == 0.0


def test_activation_and_meanfield_figures(tmp_path):
    acts = [get("relu"), get("tanh")]
    _ok(plots.activation_curves(plots.activation_frame(acts), tmp_path / "curves"), "curves")
    mf = pd.DataFrame({"activation": ["relu"] * 3 + ["tanh"] * 3, "sigma_w2": [1.0, 2.0, 3.0] * 2,
                       "q_star": [0.0, 1.0, np.inf, 0.0, 0.2, 0.9], "chi1": [0.5, 1.0, 1.5, 1.0, 1.1, 1.3]})
    _ok(plots.meanfield_curves(mf, tmp_path / "mf", critical={"relu": 2.0, "tanh": float("nan")}), "mf")


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    """PNG and SVG carry no date, version or random id: a rebuilt report differs only where its data do."""
    mf = pd.DataFrame({"activation": ["relu"] * 3 + ["tanh"] * 3, "sigma_w2": [1.0, 2.0, 3.0] * 2,
                       "q_star": [0.0, 1.0, np.inf, 0.0, 0.2, 0.9], "chi1": [0.5, 1.0, 1.5, 1.0, 1.1, 1.3]})
    first = plots.meanfield_curves(mf, tmp_path / "a" / "mf", critical={"relu": 2.0, "tanh": float("nan")})
    again = plots.meanfield_curves(mf, tmp_path / "b" / "mf", critical={"relu": 2.0, "tanh": float("nan")})
    assert "clip-path" in first[1].read_text()
    for p, q in zip(first, again):
        assert p.read_bytes() == q.read_bytes(), p.name


def test_make_all_on_a_real_study(tmp_path, real_results):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    paths = plots.make_all(real_results, tmp_path)
    assert plt.get_fignums() == before                  # no pyplot state left behind
    stems = sorted({p.stem for p in paths})
    # the tiny study records no sharpness, and its short curves may have no plateau
    assert set(plots.FIGURES) - {"sharpness", "plateaus"} <= set(stems) <= set(plots.FIGURES)
    for p in paths:
        _ok([p.with_suffix(".png"), p.with_suffix(".svg")], p.stem)


def test_make_all_draws_only_what_the_files_allow(tmp_path, real_results):
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(real_results / "tiny" / "runs.csv", study / "runs.csv")
    stems = {p.stem for p in plots.make_all(study, tmp_path / "out")}
    assert stems == {"final_accuracy", "time_per_epoch", "first_layer_grad"}
    # a folder of study folders: one sub-folder of figures per study
    paths = plots.make_all(tmp_path, tmp_path / "all")
    assert paths and all(p.parent == tmp_path / "all" / "study" for p in paths)


def test_depth_profiles_of_a_real_study(real_results):
    """Measured: log‖∂L/∂z_l‖² of hidden layers 1..L at the first probe; predicted: the same G_l the
    gradient-flow claim fits (one theory for claims and figures), anchored at the last hidden layer."""
    from empirical.analysis.claims import gradient_flow
    from empirical.analysis.results_schema import load_study
    from empirical.analysis.verdicts import slope

    st = load_study(str(real_results / "tiny"))
    measured = plots.measured_depth_profile(st.layers, st.runs)
    assert set(measured["source"]) == {"measured"} and sorted(measured["layer"].unique()) == [1, 2, 3, 4, 5, 6]
    raw = st.layers[(st.layers.metric == "grad_norm_z") & (st.layers.step == 0) & (st.layers.layer == 3)].iloc[0]
    got = measured[(measured.run_id == raw.run_id) & (measured.layer == 3)]
    assert got["value"].iloc[0] == pytest.approx(np.log(raw.value ** 2))
    pred = plots.predicted_depth_profile(st.runs, st.layers)
    assert set(pred["run_id"]) == set(st.runs["run_id"])
    claims = {r.activation: r.predicted for r in gradient_flow(st) if r.claim == "grad_slope_layerwise"}
    fit = list(range(2, 5))
    for act, d in pred.groupby("activation"):
        slopes = [-slope(fit, g.set_index("layer")["value"].loc[fit].tolist()) for _, g in d.groupby("run_id")]
        assert float(np.mean(slopes)) == pytest.approx(claims[act], rel=1e-9, abs=1e-12)


def test_depth_profile_general_input(tmp_path):
    rows = []
    for src, slope in (("measured", -0.5), ("predicted", -0.45)):
        for seed in (0, 1):
            for layer in range(5):
                rows.append(dict(activation="tanh", source=src, layer=layer, seed=seed, init="he",
                                 value=slope * (4 - layer) + 0.01 * seed))
    _ok(plots.depth_profile(pd.DataFrame(rows), tmp_path / "dp", facet="init"), "dp")


def test_sample_images_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ((6, 8, 8), (6, 1, 8, 8), (6, 8, 8, 3), (6, 64)):
        _ok(plots.sample_images(rng.random(shape), list(range(6)), tmp_path / f"s{len(shape)}{shape[-1]}",
                                class_names=list("abcdef")), f"s{len(shape)}{shape[-1]}")


def test_sharpness_and_plateau_figures(tmp_path):
    steps = np.arange(0, 101, 20)
    sf = pd.DataFrame([{"run_id": f"{a}{s}", "activation": a, "seed": s, "step": t, "sharpness": 1 + t / 50 + s,
                        "threshold": 4.0, "optimizer": "sgd", "lr": 0.5, "kind": "sharpness"}
                       for a in ("relu", "leaky_relu") for s in (1, 2) for t in steps])
    _ok(plots.sharpness_curves(sf, tmp_path / "sh"), "sh")
    t = np.arange(1, 401)
    loss = np.where(t < 100, 2.3, 2.3 * np.exp(-(t - 100) / 50))
    st = pd.DataFrame({"run_id": "r", "step": t, "loss": loss})
    pf = pd.DataFrame({"run_id": ["r"], "activation": ["sigmoid"], "plateau_steps": [99], "grad_w1_init": [1e-4]})
    table = pd.DataFrame({"run_id": ["r"], "start_step": [1], "end_step": [99]})
    _ok(plots.plateau_runs(st, pf, table, tmp_path / "pl"), "pl")
