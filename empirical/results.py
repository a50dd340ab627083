"""The results folder of a study: atomic writes, resume by run id, a lock against concurrent writers.

Layout of ``<out_dir>/<study>/``::

    study.json             config, versions, machine, wall time
    runs.csv  epochs.csv  steps.csv  layers.csv     merged tidy tables (pandas.read_csv reads them)
    parts/<run_id>/        one finished run: run.json, epochs.csv, steps.csv, layers.csv, manifest.json

A run is finished exactly when its ``manifest.json`` exists and the sha256 of every part matches it;
the manifest is written last, by rename, so a killed writer leaves no half-finished run that looks
finished. The merged tables are rebuilt from the parts after every group, also by rename.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
from typing import Iterable, Sequence

TABLES = ("runs", "epochs", "steps", "layers")
KEYS = ("run_id", "activation", "seed", "init")


class ResultsError(RuntimeError):
    """A results folder that cannot be used as it is; the message says why and what to do."""


def atomic_write(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """CSV text with a header; None is written as an empty cell."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Lock:
    """An exclusive lock file ``.lock`` holding the owner's host and pid; a stale lock is taken over."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, ".lock")
        self.held = False

    def acquire(self) -> None:
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(self.path) as fh:
                        host, pid = fh.read().split()
                except (OSError, ValueError):
                    host, pid = "", "0"
                if host == socket.gethostname() and not _alive(int(pid)):
                    os.unlink(self.path)
                    continue
                raise ResultsError(
                    f"results folder {os.path.dirname(self.path)} is in use by another study (process {pid} on "
                    f"{host or 'unknown host'}); wait for it to finish, or delete {self.path} if it is dead"
                ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self.held = True
            return

    def release(self) -> None:
        if self.held and os.path.exists(self.path):
            os.unlink(self.path)
        self.held = False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable(folder: str) -> None:
    """Create ``folder`` if needed; raise ResultsError if it cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise ResultsError(f"output folder {folder} is not writable ({exc.strerror}); choose another with --out-dir") from None


class Store:
    """Reads and writes one study folder."""

    def __init__(self, folder: str):
        self.folder = folder
        self.parts = os.path.join(folder, "parts")

    def finished(self) -> dict[str, dict]:
        """run_id -> run row for every run whose parts pass their checksums; ResultsError if any is corrupt."""
        done = {}
        if not os.path.isdir(self.parts):
            return done
        for run_id in sorted(os.listdir(self.parts)):
            part = os.path.join(self.parts, run_id)
            manifest = os.path.join(part, "manifest.json")
            if run_id.startswith(".") or not os.path.exists(manifest):
                continue
            try:
                with open(manifest) as fh:
                    sums = json.load(fh)
                for name, digest in sums.items():
                    with open(os.path.join(part, name), "rb") as fh:
                        if _sha(fh.read()) != digest:
                            raise ValueError(name)
                with open(os.path.join(part, "run.json")) as fh:
                    done[run_id] = json.load(fh)
            except (OSError, ValueError, KeyError) as exc:
                raise ResultsError(
                    f"results of run {run_id} in {part} are corrupted or truncated ({exc}); delete that folder "
                    "to redo the run, then run the same command again") from None
        return done

    def write_run(self, rec) -> None:
        """Write one finished run's parts, then its manifest (the commit point)."""
        part = os.path.join(self.parts, rec.row["run_id"])
        if os.path.exists(part):
            shutil.rmtree(part)
        os.makedirs(part)
        keys = {k: rec.row[k] for k in KEYS}
        files = {
            "run.json": json.dumps(rec.row, indent=1).encode(),
            "epochs.csv": to_csv([{**keys, **e} for e in rec.epochs]).encode(),
            "steps.csv": to_csv([{**keys, **s} for s in rec.steps]).encode(),
            "layers.csv": to_csv([{**keys, **s} for s in rec.layers]).encode(),
        }
        for name, data in files.items():
            atomic_write(os.path.join(part, name), data)
        atomic_write(os.path.join(part, "manifest.json"),
                     json.dumps({n: _sha(d) for n, d in files.items()}, sort_keys=True))

    def merge(self, order: Iterable[str], log=None) -> dict[str, dict]:
        """Rebuild the four merged tables from the parts of the runs in ``order`` that are finished;
        return ``finished()``'s rows.

        A merged table whose bytes differ from what was last written here (edited or truncated by
        hand) is not merged into: it is kept beside as ``<table>.csv.edited`` and named in the log.
        """
        rows = self.finished()
        ids = [i for i in order if i in rows]
        texts = {"runs": to_csv([rows[i] for i in ids])}
        for table in TABLES[1:]:
            chunks, header = [], None
            for i in ids:
                with open(os.path.join(self.parts, i, f"{table}.csv")) as fh:
                    lines = fh.read().splitlines(keepends=True)
                if not lines:
                    continue
                header = header or lines[0]
                chunks.extend(lines[1:])
            texts[table] = (header or "run_id\n") + "".join(chunks)
        os.makedirs(self.parts, exist_ok=True)
        sums_path = os.path.join(self.folder, ".merged.json")
        try:
            with open(sums_path) as fh:
                last = json.load(fh)
        except (OSError, ValueError):
            last = {}
        for table, text in texts.items():
            path = os.path.join(self.folder, f"{table}.csv")
            if table in last and os.path.exists(path):
                with open(path, "rb") as fh:
                    if _sha(fh.read()) != last[table]:
                        os.replace(path, path + ".edited")
                        (log or print)(f"warning: {path} was changed since this program wrote it; kept as "
                                       f"{os.path.basename(path)}.edited and rebuilt from parts/")
            atomic_write(path, text)
        atomic_write(sums_path, json.dumps({t: _sha(x.encode()) for t, x in texts.items()}))
        return rows

    def merged_intact(self) -> bool:
        """True iff every merged table exists with the bytes this program last wrote (.merged.json)."""
        try:
            with open(os.path.join(self.folder, ".merged.json")) as fh:
                last = json.load(fh)
            for table in TABLES:
                with open(os.path.join(self.folder, f"{table}.csv"), "rb") as fh:
                    if _sha(fh.read()) != last[table]:
                        return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return True

    def read_study(self) -> dict:
        """The study.json written before (empty if none or unreadable)."""
        try:
            with open(os.path.join(self.folder, "study.json")) as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_study(self, info: dict) -> None:
        atomic_write(os.path.join(self.folder, "study.json"), json.dumps(info, indent=1, sort_keys=True, default=str))


def code_revision() -> str:
    """The code that wrote a study: ``git:<commit>`` (``+dirty`` with uncommitted changes) in a checkout,
    else ``actlab <version>`` of the installed package, else "unknown"."""
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return f"git:{head}" + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib import metadata

    try:
        return f"actlab {metadata.version('actlab')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def environment() -> dict:
    """Versions and machine facts recorded in study.json."""
    import numpy
    import scipy
    import sympy
    import torch

    return {
        "python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "sympy": sympy.__version__, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
