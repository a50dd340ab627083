"""Faults survived: any SIGKILL or Ctrl-C, then the same command, gives byte-identical tables.

The unit of commit and of resume is the batched group, so these compare every table (wall-time
columns aside) of an interrupted-then-resumed study with an uninterrupted one. Kills are placed at
random file-system commit events (inside merges, between the files and the commits of groups) and at
random times, by a fork server (``fault_zygote.py``) that imports the engine once, so that each attempt
costs a fraction of a second.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_zygote.py")
TABLES = ("runs", "epochs", "steps", "layers")
WALL = {"time_per_epoch_s", "group_time_per_epoch_s", "act_time_per_epoch_s", "epoch_time_s"}
STUDY = ["--activation", "relu,tanh", "--seeds", "1,2", "--model", "mlp", "--model", "tinyvgg", "--channels", "2",
         "--widths", "8", "--train-size", "60", "--batch-size", "30", "--epochs", "2", "--probe-every", "3",
         "--probe-size", "16", "--no-progress", "--no-act-timing", "--quiet"]


class Zygote:
    def __init__(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
        self.proc = subprocess.Popen([sys.executable, ZYGOTE, "--name", "warm", *STUDY], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert json.loads(self.proc.stdout.readline())["warm"] == 0

    def run(self, out, fault=None):
        argv = ["--out-dir", str(out), "--name", "s", *STUDY]
        self.proc.stdin.write(json.dumps({"argv": argv, "fault": fault}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.fixture(scope="module")
def reference(zygote, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    r = zygote.run(out)
    assert r["rc"] == 0, r["stderr"]
    return out / "s", r["events"]


def tables(folder) -> dict[str, str]:
    """Each table's text without its wall-time columns."""
    out = {}
    for t in TABLES:
        rows = list(csv.reader(io.StringIO((folder / f"{t}.csv").read_text())))
        keep = [i for i, c in enumerate(rows[0]) if c not in WALL]
        out[t] = "\n".join(",".join(r[i] for i in keep) for r in rows)
    return out


def assert_clean_and_equal(folder, reference_folder):
    assert tables(folder) == tables(reference_folder)
    debris = [p.name for p in folder.rglob("*") if p.name.startswith((".tmp-", ".write-test-"))
              or p.name.endswith(".edited") or p.name == ".lock"]
    assert not debris, debris
    info = json.loads((folder / "study.json").read_text())
    assert info["status"] == "complete"
    assert info["groups"] == json.loads((reference_folder / "study.json").read_text())["groups"]


def _resume(zygote, folder):
    r = zygote.run(folder)
    assert r["rc"] == 0 and r["signal"] is None, r["stderr"]
    assert "Traceback" not in r["stderr"] and "changed since this program wrote it" not in r["stderr"], r["stderr"]


def test_sigkill_at_random_commit_events_and_times_then_resume(zygote, reference, tmp_path):
    """22 SIGKILLs (16 at commit events, 6 at random times), each resumed; 4 of them killed twice."""
    ref, n_events = reference
    rng = random.Random(14)
    points = [{"at": rng.randint(1, n_events)} for _ in range(16)]
    points += [{"after_s": rng.uniform(0.0, 1.5)} for _ in range(6)]
    killed = {"at": 0, "after_s": 0}
    for i, fault in enumerate(points):
        out = tmp_path / f"k{i}"
        first = zygote.run(out, {**fault, "signal": "KILL"})
        if first["signal"] == signal.SIGKILL:
            killed[next(iter(fault))] += 1
        else:
            assert first["rc"] == 0, first["stderr"]
        if i % 5 == 0 and "at" in fault:  # a second kill in the same folder before resuming
            again = zygote.run(out, {"at": max(1, fault["at"] // 2), "signal": "KILL"})
            assert again["signal"] == signal.SIGKILL or again["rc"] == 0, again["stderr"]
        _resume(zygote, out)
        assert_clean_and_equal(out / "s", ref)
    # every kill at a commit event lands; a kill at a random time may come after a fast run has finished
    assert killed["at"] == 16 and killed["after_s"] >= 1, killed


def test_sigint_at_commit_events_then_resume(zygote, reference, tmp_path):
    ref, n_events = reference
    for i, at in enumerate((1, n_events // 3, (2 * n_events) // 3)):
        out = tmp_path / f"i{i}"
        r = zygote.run(out, {"at": at, "signal": "INT"})
        assert r["rc"] == 130, r["stderr"]
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        assert len(lines) == 1 and "run the same command again to resume" in lines[0], r["stderr"]
        assert not (out / "s" / ".lock").exists()
        if (out / "s" / "study.json").exists():
            assert json.loads((out / "s" / "study.json").read_text())["status"] == "incomplete"
        _resume(zygote, out)
        assert_clean_and_equal(out / "s", ref)


@pytest.mark.parametrize("after_s", [0.4, 0.9])
def test_sigint_in_the_first_second_of_the_cli(zygote, reference, tmp_path, after_s):
    """Ctrl-C while Python imports torch: exit 130 and one line, never a traceback; then resume."""
    ref, _ = reference
    cmd = [sys.executable, "-m", "empirical.run", "--out-dir", str(tmp_path), "--name", "s", *STUDY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode != 0:
        assert proc.returncode == 130, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("interrupted"), err
    _resume(zygote, tmp_path)
    assert_clean_and_equal(tmp_path / "s", ref)


def test_a_different_study_in_the_same_folder_is_refused(zygote, reference, tmp_path):
    ref, _ = reference
    r = zygote.run(tmp_path)
    assert r["rc"] == 0
    argv = ["--out-dir", str(tmp_path), "--name", "s", *STUDY, "--lr", "0.01"]
    zygote.proc.stdin.write(json.dumps({"argv": argv, "fault": None}) + "\n")
    zygote.proc.stdin.flush()
    other = json.loads(zygote.proc.stdout.readline())
    assert other["rc"] == 2
    lines = [ln for ln in other["stderr"].splitlines() if ln.strip()]
    assert len(lines) == 1 and "holds a different study (lr was 0.001, now 0.01)" in lines[0]
    assert "--name s-2" in lines[0]
    assert tables(tmp_path / "s") == tables(ref)


def test_second_writer_is_refused_while_the_first_runs(tmp_path):
    from empirical.results import Lock, ResultsError

    (tmp_path / "s").mkdir()
    first = Lock(str(tmp_path / "s"))
    first.acquire()
    try:
        with pytest.raises(ResultsError, match=f"in use by another study .process {os.getpid()}"):
            Lock(str(tmp_path / "s")).acquire()
    finally:
        first.release()
