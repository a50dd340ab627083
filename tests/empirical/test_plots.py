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
FIXTURE = REPO / "tests" / "fixtures" / "results" / "tiny"

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


def test_make_all_on_fixture(tmp_path):
    paths = plots.make_all(FIXTURE, tmp_path)
    stems = sorted({p.stem for p in paths})
    assert stems == sorted(plots.FIGURES)
    for stem in stems:
        _ok([tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"], stem)


def test_make_all_draws_only_what_the_files_allow(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(FIXTURE / "runs.csv", study / "runs.csv")
    stems = {p.stem for p in plots.make_all(study, tmp_path / "out")}
    assert stems == {"final_accuracy", "time_per_epoch", "first_layer_grad"}
    # a folder of study folders: one sub-folder of figures per study
    paths = plots.make_all(tmp_path, tmp_path / "all")
    assert paths and all(p.parent == tmp_path / "all" / "study" for p in paths)


def test_depth_profile_general_input(tmp_path):
    rows = []
    for src, slope in (("measured", -0.5), ("predicted", -0.45)):
        for seed in (0, 1):
            for layer in range(5):
                rows.append(dict(activation="tanh", source=src, layer=layer, seed=seed, init="he",
                                 value=slope * (4 - layer) + 0.01 * seed))
    _ok(plots.depth_profile(pd.DataFrame(rows), tmp_path / "dp", facet="init"), "dp")
    measured = plots.measured_depth_profile(pd.read_csv(FIXTURE / "layers.csv"))
    assert set(measured["source"]) == {"measured"} and sorted(measured["layer"].unique()) == [0, 1, 2]
    raw = pd.read_csv(FIXTURE / "layers.csv")
    one = raw[(raw.metric == "grad_norm_z") & (raw.step == 0) & (raw.layer == "fc1")].iloc[0]
    got = measured[(measured.activation == one.activation) & (measured.seed == one.seed) & (measured.layer == 0)]
    assert got["value"].iloc[0] == pytest.approx(np.log(one.value ** 2))


def test_sample_images_layouts(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ((6, 8, 8), (6, 1, 8, 8), (6, 8, 8, 3), (6, 64)):
        _ok(plots.sample_images(rng.random(shape), list(range(6)), tmp_path / f"s{len(shape)}{shape[-1]}",
                                class_names=list("abcdef")), f"s{len(shape)}{shape[-1]}")


def test_no_pyplot_state_left_behind(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.make_all(FIXTURE, tmp_path)
    assert plt.get_fignums() == before
