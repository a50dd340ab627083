"""Per-activation solo timing is recorded with its method; the study's compute time is the sum over
invocations (a resume adds its time, a rerun with nothing to train adds nothing)."""
from __future__ import annotations

import json
import shutil

import pandas as pd

from empirical.config import StudyConfig, validate
from empirical.study import run_study


def _cfg(tmp_path):
    return validate(StudyConfig(name="t", activations=("relu", "tanh"), seeds=(1, 2), widths=(8,), epochs=1,
                                probe_every=1000, out_dir=str(tmp_path)))


def _study(tmp_path):
    with open(tmp_path / "t" / "study.json") as fh:
        return json.load(fh)


def test_solo_times_and_compute_time_sum(tmp_path):
    cfg = _cfg(tmp_path)
    run_study(cfg, progress=False, log=lambda *_: None)
    runs = pd.read_csv(tmp_path / "t" / "runs.csv")
    assert (runs["solo_step_time_s"] > 0).all() and (runs["solo_time_per_epoch_s"] > 0).all()
    # one measurement per activation, shared by its seeds
    assert runs.groupby("activation")["solo_step_time_s"].nunique().eq(1).all()
    first = _study(tmp_path)
    assert "solo_step_time_s" in first["timing_method"] and first["compute_time_s"] > 0
    c1 = first["compute_time_s"]

    run_study(cfg, progress=False, log=lambda *_: None)              # nothing to train
    assert _study(tmp_path)["compute_time_s"] == c1

    rid = runs["run_id"].iloc[-1]
    part = next(p for p in (tmp_path / "t" / "parts").iterdir() if (p / rid).is_dir())  # its group's folder
    shutil.rmtree(part)                                               # one task lost: a resume retrains it
    run_study(cfg, progress=False, log=lambda *_: None)
    after = _study(tmp_path)
    assert after["compute_time_s"] > c1
    assert abs(after["compute_time_s"] - (c1 + after["wall_time_s"])) <= 2e-3
