"""A newcomer's run: it trains into runs/ (not the shipped results/), records the code revision, a rerun
changes nothing on disk, and --reproduce retrains a study and says whether it is bit-identical."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from empirical import config as C
from empirical.run import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--activation", "relu,tanh", "--seeds", "1", "--widths", "8,8", "--epochs", "1", "--probe-every", "3",
         "--probe-size", "32", "--no-progress", "--no-act-timing", "--quiet"]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_default_output_is_not_the_shipped_results():
    assert C.StudyConfig().out_dir == "runs"
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/default/runs.csv"], cwd=ROOT)
    assert ignored.returncode == 0          # git ignores it (in a checkout)


def test_code_revision_recorded_and_noop_rerun_changes_nothing(tmp_path, capsys):
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "s" / "study.json").read_text())
    assert info["code_revision"].startswith(("git:", "actlab ")) and info["status"] == "complete"
    before = _snapshot(tmp_path / "s")
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert _snapshot(tmp_path / "s") == before


def test_a_complete_study_shipped_without_its_parts_is_not_retrained(tmp_path, capsys):
    """results/trainability ships its merged tables and study.json but not parts/ (1,500 run folders):
    the same command must still train nothing and write nothing."""
    import shutil

    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path / "made")]) == 0
    shutil.rmtree(tmp_path / "made" / "s" / "parts")
    shutil.copytree(tmp_path / "made" / "s", tmp_path / "s")     # shipped, then cloned into another folder
    before = _snapshot(tmp_path / "s")
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert _snapshot(tmp_path / "s") == before
    (tmp_path / "s" / "runs.csv").write_text("edited\n")       # tables no longer intact: retrained, not trusted
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "s" / "parts").is_dir() and (tmp_path / "s" / "runs.csv").read_text() != "edited\n"



def test_a_compressed_shipped_study_reads_reruns_and_reproduces_as_the_plain_one(tmp_path, capsys, monkeypatch):
    """results/ ships epochs, steps and layers as .csv.gz: every reader sees the same tables, the same command
    trains nothing, --reproduce compares them, and a damaged .gz is kept aside and rebuilt, never trusted."""
    import gzip
    import hashlib
    import shutil

    import pandas as pd

    from empirical.analysis.results_schema import load_study, read_csv
    from empirical.results import main as results_main

    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path / "made")]) == 0
    made = tmp_path / "made" / "s"
    shutil.rmtree(made / "parts")
    shutil.copytree(made, tmp_path / "s")
    shipped = tmp_path / "s"
    assert results_main(["compress", str(shipped)]) == 0
    assert sorted(p.name for p in shipped.glob("*.csv*")) == ["epochs.csv.gz", "layers.csv.gz", "runs.csv",
                                                              "steps.csv.gz"]
    for t in ("epochs", "steps", "layers"):
        gz = (shipped / f"{t}.csv.gz").read_bytes()
        assert gzip.decompress(gz) == (made / f"{t}.csv").read_bytes()
        again = tmp_path / "again"
        shutil.copytree(made, again)
        results_main(["compress", str(again)])
        assert (again / f"{t}.csv.gz").read_bytes() == gz          # no name or time stamp inside
        shutil.rmtree(again)
        pd.testing.assert_frame_equal(read_csv(shipped / f"{t}.csv"), pd.read_csv(made / f"{t}.csv"))
    a, b = load_study(str(shipped)), load_study(str(made))
    for t in ("runs", "epochs", "steps", "layers"):
        pd.testing.assert_frame_equal(getattr(a, t), getattr(b, t))

    before = _snapshot(shipped)
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert _snapshot(shipped) == before
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["--reproduce", str(shipped), "--no-progress"]) == 0
    assert "bit-identical" in capsys.readouterr().out

    (shipped / "steps.csv.gz").write_bytes(before[Path("steps.csv.gz")][1][:-9])     # truncated
    assert main([a for a in SMALL if a != "--quiet"] + ["--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert (shipped / "steps.csv.gz.edited").is_file() and not (shipped / "steps.csv.gz").exists()
    assert (shipped / "steps.csv").read_bytes() == (made / "steps.csv").read_bytes()
    assert "steps.csv.gz was changed" in capsys.readouterr().err

    # an older compressed version of ours (a merge interrupted between its tables): rebuilt plain, the .gz removed
    assert results_main(["compress", str(shipped)]) == 0
    (shipped / "steps.csv.gz").write_bytes(gzip.compress(b"run_id\n"))
    sums = json.loads((shipped / ".merged.json").read_text())
    sums["steps"] = [hashlib.sha256(b"run_id\n").hexdigest(), *sums["steps"]]
    (shipped / ".merged.json").write_text(json.dumps(sums))
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path)]) == 0
    assert not (shipped / "steps.csv.gz").exists() and not (shipped / "steps.csv.gz.edited.edited").exists()
    assert (shipped / "steps.csv").read_bytes() == (made / "steps.csv").read_bytes()
    assert (shipped / "layers.csv.gz").is_file()                  # unchanged tables stay as they were

    capsys.readouterr()
    assert results_main(["compress", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a study folder" in err


def test_reproduce_reports_bit_identical_and_differences(tmp_path, capsys, monkeypatch):
    assert main([*SMALL, "--name", "s", "--out-dir", str(tmp_path / "shipped")]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    shipped = str(tmp_path / "shipped" / "s")
    assert main(["--reproduce", shipped, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "bit-identical" in out and "NOT" not in out
    fresh = tmp_path / "runs" / "reproduce" / "s"
    assert (fresh / "runs.csv").is_file()
    # one changed loss in the shipped copy is found and counted
    steps = Path(shipped) / "steps.csv"
    lines = steps.read_text().splitlines(keepends=True)
    cells = lines[1].rstrip("\n").split(",")
    cells[-1] = "0.123456789"
    steps.write_text("".join([lines[0], ",".join(cells) + "\n", *lines[2:]]))
    assert main(["--reproduce", shipped, "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "NOT identical: 1 of" in out and "was made on" not in out        # same CPU: no CPU note
    # a study made on another CPU model: the difference is attributed to the CPU's kernels in a note
    env = json.loads((fresh / "study.json").read_text())["environment"]
    assert env["cpu_capability"] and "cpu_model" in env
    meta = json.loads(Path(shipped, "study.json").read_text())
    meta["environment"]["cpu_model"] = "Another CPU 9000"
    Path(shipped, "study.json").write_text(json.dumps(meta))
    assert main(["--reproduce", shipped, "--no-progress"]) == 3
    assert "was made on Another CPU 9000, this run on" in capsys.readouterr().out
    assert main(["--reproduce", shipped, "--epochs", "2"]) == 2
    assert "--reproduce takes the whole study" in capsys.readouterr().err


def test_fresh_clone_default_run_trains_and_leaves_results_untouched(tmp_path):
    """The README's first command in a copy of the checkout: trains into runs/default, results/ unchanged."""
    if not (ROOT / "results" / "default").is_dir():
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = _snapshot(ROOT / "results")
    proc = subprocess.run([sys.executable, "-m", "empirical.run", "--epochs", "1", "--seeds", "1",
                           "--no-progress", "--no-act-timing", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "default" / "runs.csv").is_file()
    assert _snapshot(ROOT / "results") == before
