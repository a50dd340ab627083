"""predict on damaged study folders: one line naming the file and row, exit 2, never a traceback;
predict's --out never replaces anything but a regular file."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from empirical.analysis.predict import main as predict_main
from empirical.run import main as run_main

TINY = ["--activation", "relu,tanh", "--seeds", "1", "--widths", "8,8", "--epochs", "1", "--train-size", "40",
        "--batch-size", "20", "--probe-every", "2", "--probe-size", "16", "--no-progress", "--no-act-timing", "--quiet"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged")
    assert run_main(["--out-dir", str(root), "--name", "s", *TINY]) == 0
    return root / "s"


def _copy(study, tmp_path):
    dest = tmp_path / "s"
    shutil.copytree(study, dest, ignore=shutil.ignore_patterns("parts"))
    return dest


def _edit(path, fn):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


def _column(lines, name, value, row=1):
    head = lines[0].rstrip("\n").split(",")
    cells = lines[row].rstrip("\n").split(",")
    cells[head.index(name)] = value
    lines[row] = ",".join(cells) + "\n"
    return lines


DAMAGE = {
    "runs.csv cut mid-row": ("runs.csv", lambda ls: ls[:-1] + [ls[-1][: len(ls[-1]) // 3]], ["runs.csv", "row"]),
    "NaN depth": ("runs.csv", lambda ls: _column(ls, "depth", "nan"), ["depth", "nan"]),
    "text depth": ("runs.csv", lambda ls: _column(ls, "depth", "deep"), ["depth", "deep"]),
    "unknown activation": ("runs.csv", lambda ls: _column(ls, "activation", "rleu"), ["activation", "rleu"]),
    "code-like activation": ("runs.csv", lambda ls: _column(ls, "activation", "__import__('os').getcwd()"),
                             ["activation", "__import__"]),
    "duplicated row": ("runs.csv", lambda ls: ls + [ls[1]], ["appears twice"]),
    "text row": ("runs.csv", lambda ls: ls + ["this is not a run\n"], ["runs.csv"]),
    "NaN layer": ("layers.csv", lambda ls: _column(ls, "layer", "nan", row=3), ["layers.csv", "layer"]),
    "text step": ("steps.csv", lambda ls: _column(ls, "step", "one"), ["steps.csv", "step", "one"]),
    "text loss": ("steps.csv", lambda ls: _column(ls, "loss", "lots"), ["steps.csv", "loss", "lots"]),
    "stray run in layers": ("layers.csv", lambda ls: _column(ls, "run_id", "ffffffffffff", row=2),
                            ["layers.csv", "ffffffffffff"]),
    "empty runs.csv": ("runs.csv", lambda ls: [], ["runs.csv"]),
    "binary runs.csv": ("runs.csv", lambda ls: ["\x00\x01\x02\x03,\xff\n"], ["runs.csv"]),
}


@pytest.mark.parametrize("case", list(DAMAGE), ids=list(DAMAGE))
def test_predict_on_a_damaged_study_is_one_line(case, study, tmp_path, capsys):
    file, damage, words = DAMAGE[case]
    s = _copy(study, tmp_path)
    _edit(s / file, damage)
    code = predict_main([str(s), "--out", str(tmp_path / "p.csv"), "--quiet"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("schema", [[1, 2], {"config": [1]}, {"config": {"name": 5}}, "text"])
def test_a_study_json_of_another_schema_is_not_used(schema, study, tmp_path, capsys):
    s = _copy(study, tmp_path)
    (s / "study.json").write_text(json.dumps(schema))
    assert predict_main([str(s), "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0, capsys.readouterr().err
    assert (tmp_path / "p.csv").stat().st_size > 0


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "device"])
def test_predict_out_that_is_not_a_regular_file_is_refused(kind, study, tmp_path, capsys):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(outside)
    elif kind == "folder":
        target.mkdir()
    else:
        target = "/dev/null"
    code = predict_main([str(study), "--out", str(target), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "not a regular file" in err, err
    assert outside.read_text() == "keep me"
    if kind == "fifo":
        assert not os.path.isfile(target) and os.path.exists(target)
    assert not os.path.isfile("/dev/null")
