"""Faults survived: Ctrl-C saves finished runs and resumes; a second writer is refused while the first runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmd(out, name="f", epochs="40"):
    """Three programs (depths 1, 2, 3) of two runs: the seeds of one data set and model would share one."""
    return [sys.executable, "-m", "empirical.run", "--name", name, "--out-dir", str(out), "--activation",
            "relu,tanh", "--seeds", "1", "--depths", "1,2,3", "--width", "64", "--epochs", epochs, "--no-progress",
            "--no-act-timing"]


def _wait_for_parts(parts, n, proc, timeout=300):  # minutes on a loaded 2-core machine
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("*/manifest.json"))) >= n:
            return True
        time.sleep(0.02)
    return False


def test_sigint_saves_finished_runs_and_says_how_to_resume(tmp_path):
    proc = subprocess.Popen(_cmd(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "f" / "parts"
    assert _wait_for_parts(parts, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    saved = {p.parent.name for p in parts.glob("*/manifest.json")}
    assert 2 <= len(saved) < 6
    assert not (tmp_path / "f" / ".lock").exists()
    runs = pd.read_csv(tmp_path / "f" / "runs.csv")
    assert set(runs.run_id) == saved
    again = subprocess.run(_cmd(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    runs = pd.read_csv(tmp_path / "f" / "runs.csv")
    assert len(runs) == 6 and runs.run_id.is_unique


def test_second_study_in_the_same_folder_is_refused(tmp_path):
    first = subprocess.Popen(_cmd(tmp_path, epochs="5000"), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "f" / ".lock").exists() and time.time() < deadline:
            time.sleep(0.02)
        second = subprocess.run(_cmd(tmp_path, epochs="5000"), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first study ended before the second started"
        assert second.returncode == 2
        assert "in use by another study" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()
