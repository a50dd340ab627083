"""Predictions on synthetic study folders built so that the verdicts are known, the CLI, and one
small real run end to end (the Lipschitz bound is a theorem: it must hold on real probes)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from empirical import predict as cli
from empirical.analysis.claims import gradient_flow, hypotheses, predict
from empirical.analysis.results_schema import load_study
from empirical.analysis.theory_bridge import lipschitz_constant, saturation_probability, small_derivative_set
from empirical.analysis.verdicts import FAILED, FIELDS, HELD, INCONCLUSIVE, NOT_APPLICABLE
from theory import meanfield
from theory.activations import lookup

DEPTH, WIDTH, EPS = 10, 256, 0.01


# ----------------------------------------------------------------------------------------------- builders

def _q_and_grad(act: str, w: float, b: float, mean_x2: float = 1.0):
    q1 = w * mean_x2 + b
    qs = meanfield.q_profile(lookup(act), q1, w, b, DEPTH)
    G = meanfield.predicted_log_grad_profile(lookup(act), q1, w, b, DEPTH)
    return qs, G


def write_study(root, name="synthetic", acts=("relu", "leaky_relu", "tanh"), seeds=(1, 2, 3),
                init="he", sigma=(2.0, 0.0), train_size="", tweak=None, steps_fn=None, first_grad=None,
                acc_fn=None, start_loss=None, final_loss=None):
    """A study folder whose layer probes follow mean-field theory exactly (plus small seed noise).

    ``tweak(act, seed, rows)`` may edit the per-layer dict rows[(metric, layer, step)] = value.
    """
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    w, b = sigma
    runs, layers, epochs, steps = [], [], [], []
    for seed in seeds:
        for act in acts:
            rid = f"{act[:5]}{seed:03d}{init[:3]}"
            qs, G = _q_and_grad(act, w, b)
            lip = lipschitz_constant(act)
            rows = {}
            for step in (0, 10):
                rows[("preact_q", 0, step)] = 1.0
                gz = np.exp(0.5 * (G + 0.002 * rng.standard_normal(DEPTH)))   # ‖∂L/∂z_l‖, l = 1..L
                gz = np.append(gz, gz[-1])                                      # output layer L+1
                for l in range(1, DEPTH + 2):
                    rows[("grad_norm_z", l, step)] = gz[l - 1]
                    if l <= DEPTH:
                        rows[("grad_norm_h", l, step)] = gz[l - 1] / lip        # ‖∂L/∂z_l‖ = Lip·‖∂L/∂h_l‖
                        rows[("preact_q", l, step)] = qs[l - 1]
                        rows[("saturated_frac", l, step)] = saturation_probability(act, qs[l - 1], EPS)
                        rows[("dead_frac", l, step)] = (0.1 + 0.02 * l) if act == "relu" else 0.0
                    if l >= 2:   # ‖∂L/∂h_{l-1}‖ ≤ ‖W_l‖₂‖∂L/∂z_l‖ with room: ‖W_l‖₂ = 2‖∂L/∂h_{l-1}‖/‖∂L/∂z_l‖
                        rows[("weight_spectral_norm", l, step)] = 2 * rows[("grad_norm_h", l - 1, step)] / gz[l - 1]
            if tweak:
                tweak(act, seed, rows)
            for (metric, layer, step), v in rows.items():
                layers.append(dict(run_id=rid, activation=act, seed=seed, init=init, step=step,
                                   epoch=int(step > 0), layer=layer, metric=metric, value=v))
            fg = first_grad(act, seed) if first_grad else (1e-3, 1e-4)
            n_ep = 5
            t = np.arange(1, 101)
            loss = steps_fn(act, seed, t) if steps_fn else 2.0 * np.exp(-0.03 * t) + 0.2 + 0.01 * np.sin(t)
            for e in range(1, n_ep + 1):
                acc = acc_fn(act, seed, e) if acc_fn else 0.5
                ep_loss = float(np.mean(loss[(e - 1) * 20:e * 20]))
                epochs.append(dict(run_id=rid, activation=act, seed=seed, init=init, epoch=e, train_loss=ep_loss,
                                   train_acc=acc, test_loss=ep_loss, test_acc=acc, epoch_time_s=0.1))
            for s, v in zip(t, loss):
                steps.append(dict(run_id=rid, activation=act, seed=seed, init=init, step=int(s),
                                  epoch=int((s - 1) // 20 + 1), loss=float(v)))
            if start_loss:
                steps[-100]["loss"] = start_loss(act, seed)
            runs.append(dict(
                run_id=rid, activation=act, seed=seed, init=init, sigma_w2=w, sigma_b2=b, model="mlp",
                widths="-".join([str(WIDTH)] * DEPTH), depth=DEPTH, channels=8, dataset="digits",
                train_size=train_size, optimizer="adam", lr=1e-3, momentum=0.0, batch_size=128, epochs=n_ep,
                eps=EPS, status="finished", diverged_step="", steps=100,
                final_train_loss=final_loss(act, seed) if final_loss else float(loss[-1]),
                final_test_loss=1.0, final_test_acc=acc_fn(act, seed, n_ep) if acc_fn else 0.5,
                first_layer_grad_init=fg[0], first_layer_grad_final=fg[1]))
    for table, rows in (("runs", runs), ("layers", layers), ("epochs", epochs), ("steps", steps)):
        pd.DataFrame(rows).to_csv(folder / f"{table}.csv", index=False)
    return folder


def _verdicts(preds, claim):
    return {(p.activation, p.setting): p.verdict for p in preds if p.claim == claim}


def _one(preds, claim, act):
    rows = [p for p in preds if p.claim == claim and p.activation == act]
    assert len(rows) == 1, (claim, act, rows)
    return rows[0]


# ----------------------------------------------------------------------------------------------- theory helpers

def test_small_derivative_set_matches_properties_and_finds_interior_dips():
    from theory import properties
    sig = small_derivative_set("sigmoid", 0.01)
    left, right = properties.saturation_threshold(lookup("sigmoid"), 0.01)
    assert len(sig) == 2 and sig[0][0] == -math.inf and sig[1][1] == math.inf
    assert sig[0][1] == pytest.approx(left, abs=1e-8) and sig[1][0] == pytest.approx(right, abs=1e-8)
    silu = small_derivative_set("silu", 0.01)
    assert any(lo < -1.278 < hi and math.isfinite(lo) for lo, hi in silu)     # φ′ = 0 at x ≈ −1.2785
    assert small_derivative_set("leaky_relu", 0.01) == ()                    # |φ′| = 0.01 is not < 0.01
    assert small_derivative_set("relu", 0.01) == ((-math.inf, 0.0),)


@pytest.mark.parametrize("act,q", [("silu", 3.0), ("tanh", 4.0), ("gelu", 9.0), ("relu", 2.0)])
def test_saturation_probability_matches_monte_carlo(act, q):
    u = np.random.default_rng(1).standard_normal(400_000) * math.sqrt(q)
    mc = float(np.mean(np.abs(lookup(act).numpy(1)(u)) < 0.01))
    assert saturation_probability(act, q, 0.01) == pytest.approx(mc, abs=3e-3)


# ----------------------------------------------------------------------------------------------- synthetic verdicts

def test_theory_consistent_study_holds_everywhere(tmp_path):
    st = load_study(str(write_study(tmp_path)))
    preds = predict([st])
    per_study = [p for p in preds if p.study == "synthetic"]
    bad = [(p.claim, p.activation) for p in per_study if p.verdict == FAILED]
    assert bad == [("dead_units_independent_inputs", "relu")]      # the naive claim, built to fail
    claims = {p.claim for p in per_study}
    assert {"lipschitz_backprop_bound", "grad_slope_layerwise", "grad_slope_chi1_qstar", "preact_q_profile",
            "saturation_init_measured_q", "saturation_init_predicted_q", "saturation_final_measured_q",
            "no_dead_units", "dead_units_at_most_half", "dead_units_grow_with_depth"} <= claims
    assert _one(preds, "lipschitz_backprop_bound", "relu").measured == pytest.approx(1.0, abs=1e-6)
    tanh = _one(preds, "grad_slope_layerwise", "tanh")
    assert tanh.verdict == HELD and tanh.predicted > 0.03          # He-tanh is chaotic: gradients grow to input
    assert abs(tanh.measured - tanh.predicted) < 0.01
    # the relu dead fraction rises with depth and stays under 1/2, but is not P(z<0)^B ≈ 0
    assert _one(preds, "dead_units_independent_inputs", "relu").verdict == FAILED


def test_constructed_failures_are_failed(tmp_path):
    def tweak(act, seed, rows):
        if act == "tanh" and seed == 2:      # one layer ratio above Lip·‖W‖₂
            rows[("grad_norm_z", 4, 10)] = 10 * rows[("grad_norm_z", 4, 10)]
        if act == "leaky_relu":              # a dead unit where φ is zero on no interval
            rows[("dead_frac", 3, 10)] = 1 / 256
        if act == "relu":                    # gradients growing towards the output at He init (χ₁ = 1)
            lip = lipschitz_constant("relu")
            for l in range(1, DEPTH + 2):     # keep the Lipschitz bound exact: only the profile is wrong
                rows[("grad_norm_z", l, 0)] = math.exp(0.1 * l)
                if l <= DEPTH:
                    rows[("grad_norm_h", l, 0)] = math.exp(0.1 * l) / lip
                if l >= 2:
                    rows[("weight_spectral_norm", l, 0)] = 2 * rows[("grad_norm_h", l - 1, 0)] / math.exp(0.1 * l)
            for l in range(1, DEPTH + 1):
                rows[("saturated_frac", l, 0)] = 0.9
    st = load_study(str(write_study(tmp_path, tweak=tweak)))
    preds = predict([st])
    lip = _one(preds, "lipschitz_backprop_bound", "tanh")
    assert lip.verdict == FAILED and lip.measured > 5 and "BUG" in lip.reason and lip.kind == "sanity"
    assert _one(preds, "lipschitz_backprop_bound", "relu").verdict == HELD
    dead = _one(preds, "no_dead_units", "leaky_relu")
    assert dead.verdict == FAILED and dead.measured == pytest.approx(1 / 256)
    grad = _one(preds, "grad_slope_layerwise", "relu")
    assert grad.verdict == FAILED and grad.measured == pytest.approx(-0.2, abs=1e-9)
    assert _one(preds, "saturation_init_measured_q", "relu").verdict == FAILED
    assert _one(preds, "saturation_init_measured_q", "tanh").verdict == HELD


def test_critical_init_flat_claim_and_naive_chi1(tmp_path):
    sb2 = 0.05
    sw2 = meanfield.critical_sigma_w2(lookup("tanh"), sb2)
    st = load_study(str(write_study(tmp_path, acts=("tanh",), init="critical", sigma=(sw2, sb2))))
    preds = gradient_flow(st)
    flat = _one(preds, "critical_flat_grad", "tanh")
    assert flat.predicted == 0.0 and flat.setting == "init=critical sigma_b2=0.05 depth=10 width=256"
    naive = _one(preds, "grad_slope_chi1_qstar", "tanh")
    assert naive.predicted == pytest.approx(0.0, abs=1e-6)               # χ₁(q*) = 1 at the edge of chaos
    layerwise = _one(preds, "grad_slope_layerwise", "tanh")
    assert layerwise.measured == pytest.approx(layerwise.predicted, abs=0.01)
    assert flat.verdict == (HELD if abs(flat.measured) <= flat.tolerance else FAILED)


def test_underflowing_gradients_are_left_out(tmp_path):
    def tweak(act, seed, rows):
        for l in range(1, 6):
            rows[("grad_norm_z", l, 0)] = 0.0
    st = load_study(str(write_study(tmp_path, acts=("relu",), tweak=tweak)))
    g = _one(gradient_flow(st), "grad_slope_layerwise", "relu")
    assert g.verdict == HELD and "below 1e-30" in g.detail


def _hyp(preds, claim, act="relu vs sigmoid"):
    return _one([p for p in preds if p.kind == "hypothesis"], claim, act)


NINE = tuple(range(1, 10))          # 2⁻⁹ ≤ 0.05/m for a Holm family of m ≤ 25 hypotheses


def _good_relu(seeds, flip=False):
    """A study in which relu beats sigmoid in every seed on every speed and gradient claim (or loses,
    with ``flip``), and SELU starts highest and ends lowest."""
    fast, slow = (0.01, 0.08) if flip else (0.08, 0.01)
    grads = lambda act, seed: ((1e-3 * (1 + 0.1 * seed), 2e-4 * (1 + 0.1 * seed)) if (act == "relu") != flip  # noqa: E731
                               else (1e-4 * (1 + 0.05 * seed), 1e-5 * (1 + 0.1 * seed)))
    acc = lambda act, seed, e: 0.95 if (act == "relu") != flip and e >= 2 else (0.6 if e >= 4 else 0.5)  # noqa: E731
    noise = np.random.default_rng(3)
    steps = lambda act, seed, t: (2 * np.exp(-(fast if act == "relu" else slow) * t) + 0.1  # noqa: E731
                                  + 0.003 * noise.standard_normal(len(t)))
    start = lambda act, seed: (5.0 + 0.1 * seed) if act == "selu" else 2.3  # noqa: E731
    final = lambda act, seed: {"selu": 0.1, "relu": 0.2, "sigmoid": 0.9, "tanh": 0.3}[act] + 0.01 * seed  # noqa: E731
    return dict(acts=("relu", "sigmoid", "tanh", "selu"), seeds=seeds, first_grad=grads, acc_fn=acc,
                steps_fn=steps, start_loss=start, final_loss=final)


def test_hypotheses_held_with_nine_agreeing_seeds(tmp_path):
    st = load_study(str(write_study(tmp_path, **_good_relu(NINE))))
    preds = hypotheses([st])
    g = _hyp(preds, "relu_larger_first_layer_grad_init")
    assert g.verdict == HELD and g.kind == "hypothesis" and g.n == 9
    assert g.measured == pytest.approx(np.exp(np.mean([np.log((1 + 0.1 * s) / (0.1 * (1 + 0.05 * s))) for s in NINE])))
    assert g.p_value == pytest.approx(2 ** -9) and g.p_adjusted <= 0.05 and "Holm" in g.reason
    for claim in ("relu_larger_first_layer_grad_final", "relu_reaches_target_acc_sooner",
                  "relu_removes_half_loss_sooner", "relu_removes_90pct_loss_sooner",
                  "relu_lower_area_under_log_loss", "relu_faster_loss_decay"):
        assert _hyp(preds, claim).verdict == HELD, (claim, _hyp(preds, claim).reason)
    assert _hyp(preds, "relu_faster_loss_decay").measured == pytest.approx(8.0, rel=0.1)
    assert _hyp(preds, "selu_starts_highest_loss", "selu").verdict == HELD
    assert _hyp(preds, "selu_ends_among_lowest_loss", "selu").verdict == HELD
    spikes = _hyp(preds, "selu_single_batch_spikes", "selu")
    assert spikes.verdict == INCONCLUSIVE and "0 in all" in spikes.reason
    low = _hyp(preds, "sigmoid_flat_low_sample", "sigmoid")
    assert low.verdict == NOT_APPLICABLE and "--preset lowsample" in low.reason


def test_hypotheses_failed_when_the_data_contradict_them(tmp_path):
    st = load_study(str(write_study(tmp_path, **_good_relu(NINE, flip=True))))
    preds = hypotheses([st])
    for claim in ("relu_larger_first_layer_grad_init", "relu_lower_area_under_log_loss", "relu_faster_loss_decay",
                  "relu_removes_half_loss_sooner"):
        c = _hyp(preds, claim)
        assert c.verdict == FAILED and "opposite direction" in c.reason, (claim, c.reason)


def test_hypotheses_inconclusive_with_two_agreeing_seeds(tmp_path):
    st = load_study(str(write_study(tmp_path, **_good_relu((1, 2)))))
    preds = hypotheses([st])
    g = _hyp(preds, "relu_larger_first_layer_grad_init")
    assert g.measured > 5 and g.verdict == INCONCLUSIVE                  # 2 of 2 seeds agree: p = 0.25
    assert "smallest attainable p is 0.25" in g.reason and "5 seeds could" in g.reason
    assert all(c.verdict != FAILED for c in preds if c.kind == "hypothesis")


def test_speed_claims_not_applicable_when_sigmoid_never_learns(tmp_path):
    steps = lambda act, seed, t: (2.3026 + 0.002 * np.sin(t) if act == "sigmoid"  # noqa: E731
                                  else 2.3 * np.exp(-0.05 * t) + 0.05)
    acc = lambda act, seed, e: 0.099 if act == "sigmoid" else 0.9  # noqa: E731
    st = load_study(str(write_study(tmp_path, acts=("relu", "sigmoid"), seeds=NINE, steps_fn=steps, acc_fn=acc,
                                    train_size=100)))
    preds = hypotheses([st])
    for claim in ("relu_reaches_target_acc_sooner", "relu_removes_half_loss_sooner", "relu_lower_area_under_log_loss",
                  "relu_faster_loss_decay"):
        c = _hyp(preds, claim)
        assert c.verdict == NOT_APPLICABLE and "sigmoid never learned in 9/9" in c.reason, (claim, c.reason)
    assert _hyp(preds, "relu_larger_first_layer_grad_init").verdict != NOT_APPLICABLE
    flat = _hyp(preds, "sigmoid_flat_low_sample", "sigmoid")
    assert flat.verdict == HELD and "flat" in flat.reason and "train_size=100" in flat.setting


def test_decay_claim_not_applicable_on_degenerate_fits(tmp_path):
    noise = np.random.default_rng(5)
    steps = lambda act, seed, t: 1.0 + 0.02 * noise.standard_normal(len(t))  # noqa: E731 - nothing to fit
    st = load_study(str(write_study(tmp_path, acts=("relu", "sigmoid"), seeds=NINE, steps_fn=steps)))
    c = _hyp(hypotheses([st]), "relu_faster_loss_decay")
    assert c.verdict == NOT_APPLICABLE and "degenerate fit in every pair" in c.reason


def test_low_sample_sigmoid_that_learns_is_not_flat(tmp_path):
    steps = lambda act, seed, t: 2.3 * np.exp(-0.02 * t) + 0.1 + 0.01 * np.sin(seed * t)  # noqa: E731
    st = load_study(str(write_study(tmp_path, acts=("relu", "sigmoid"), seeds=(1, 2, 3, 4, 5), train_size=100,
                                    steps_fn=steps)))
    low = _hyp(hypotheses([st]), "sigmoid_flat_low_sample", "sigmoid")
    assert low.verdict == FAILED and "not flat" in low.reason


# ----------------------------------------------------------------------------------------------- CLI

def test_cli_writes_root_predictions_and_prints_table(tmp_path, capsys):
    write_study(tmp_path, name="a", acts=("relu",))
    write_study(tmp_path, name="b", acts=("tanh",))
    assert cli.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    df = pd.read_csv(tmp_path / "predictions.csv")
    assert list(df.columns) == list(FIELDS)
    assert set(df["study"]) >= {"a", "b"} and "lipschitz_backprop_bound" in out and "held" in out
    assert set(df["verdict"]) <= {HELD, FAILED, INCONCLUSIVE, NOT_APPLICABLE}
    assert "sanity checks" in out and "prediction" in out and "relations tested" in out
    assert cli.main([str(tmp_path / "a"), "--out", str(tmp_path / "x.csv"), "--quiet"]) == 0
    assert (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("make", ["missing", "empty_dir", "bad_csv", "no_columns", "bad_out"])
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, make):
    args = [str(tmp_path / "nope")]
    if make == "empty_dir":
        (tmp_path / "e").mkdir()
        args = [str(tmp_path / "e")]
    elif make in ("bad_csv", "no_columns", "bad_out"):
        folder = write_study(tmp_path, acts=("relu",))
        args = [str(folder)]
        if make == "bad_csv":
            (folder / "layers.csv").write_bytes(b"\x00\xff\"unclosed\n1,2\n3")
        elif make == "no_columns":
            (folder / "runs.csv").write_text("run_id,activation\nx,relu\n")
        else:
            args += ["--out", str(tmp_path / "no" / "such" / "p.csv")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


# ----------------------------------------------------------------------------------------------- real, end to end

def test_end_to_end_tiny_depth_sweep(tmp_path, capsys):
    from empirical import run
    rc = run.main(["--depth", "8", "--width", "64", "--epochs", "1", "--seeds", "1,2", "--init", "he",
                   "--activation", "relu,sigmoid,selu", "--probe-size", "128", "--probe-every", "4",
                   "--name", "tiny-depth", "--out-dir", str(tmp_path), "--no-progress", "--no-act-timing",
                   "--quiet"])
    assert rc == 0
    capsys.readouterr()
    assert cli.main([str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "predictions.csv")
    lip = df[df["claim"] == "lipschitz_backprop_bound"]
    assert sorted(lip["activation"]) == ["relu", "selu", "sigmoid"]
    assert (lip["verdict"] == HELD).all() and (lip["measured"] <= 1 + 1e-4).all()
    have = set(zip(df["claim"], df["activation"]))
    for act in ("relu", "sigmoid", "selu"):
        for claim in ("grad_slope_layerwise", "grad_slope_chi1_qstar", "preact_q_profile"):
            assert (claim, act) in have
    for act in ("sigmoid", "selu"):
        assert ("no_dead_units", act) in have
    assert {("dead_units_at_most_half", "relu"), ("dead_units_grow_with_depth", "relu"),
            ("saturation_init_measured_q", "relu"), ("saturation_init_measured_q", "selu"),
            ("relu_larger_first_layer_grad_init", "relu vs sigmoid"), ("relu_faster_loss_decay", "relu vs sigmoid"),
            ("relu_reaches_target_acc_sooner", "relu vs sigmoid"), ("selu_starts_highest_loss", "selu"),
            ("sigmoid_flat_low_sample", "sigmoid")} <= have
    assert (df[df["kind"] == "sanity"]["verdict"] != FAILED).all()
    assert set(df["kind"]) <= {"prediction", "bound", "ordering", "hypothesis", "sanity"}


def test_a_bound_of_zero_under_a_nonzero_gradient_fails_the_lipschitz_check(tmp_path):
    """‖∂L/∂h_3‖ = 0 while ‖∂L/∂z_3‖ > 0 is a ratio of ∞ (‖∂L/∂z‖ ≤ Lip·‖∂L/∂h‖ violated), not a value to drop."""
    def tweak(act, seed, rows):
        if act == "tanh" and seed == 2:
            rows[("grad_norm_h", 3, 10)] = 0.0
    st = load_study(str(write_study(tmp_path, tweak=tweak)))
    lip = _one(predict([st]), "lipschitz_backprop_bound", "tanh")
    assert lip.verdict == FAILED and math.isinf(lip.measured) and "BUG" in lip.reason


def test_far_depth_prediction_uses_the_hidden_layers_sigmas():
    """Xavier on 784-256×8-10: hidden σ_w² = 1, the output layer's 2·256/266. tanh at σ_w² = 1, σ_b² = 0 decays
    to q* = 0 (χ₁ = 1); the output layer's σ_w² would give q* > 0."""
    from empirical.analysis.theory_bridge import _theory
    th = _theory("tanh", (1.0,) * 8 + (2 * 256 / 266,), (0.0,) * 9, 1.0)
    assert th.hidden_sigmas == (1.0, 0.0) and th.q_star() == 0.0
    assert meanfield.fixed_point(lookup("tanh"), 2 * 256 / 266, 0.0, th.q1) > 0.1
