"""The results folder of a study: atomic writes, resume by batched group, a lock against concurrent writers.

Layout of ``<out_dir>/<study>/``::

    study.json             config, the groups (runs trained together), versions, machine, status, wall time
    runs.csv  epochs.csv  steps.csv  layers.csv     merged tidy tables (pandas.read_csv reads them)
                           (epochs, steps and layers may be stored as <table>.csv.gz: see ``compress``)
    parts/<group_id>/      one finished group: <run_id>/{run.json,epochs.csv,steps.csv,layers.csv}, manifest.json

The unit of commit and of resume is the *group*, the runs the engine trains as one batched program:
float32 rounding in a batched matmul depends on the batch's composition, so a run's numbers are a
function of its configuration *and* its group (recorded in study.json). A group is written into a
temporary folder and committed by one rename of that folder; a group is finished exactly when
``parts/<group_id>/`` exists and every file matches the sha256 in its manifest. A killed writer thus
leaves either a whole group or none, and the same command retrains exactly the unfinished groups, so
any interruption followed by the same command gives byte-identical tables (on CPU).

Writes go only to regular files inside the study folder (anything else at a target path is refused),
with the permissions the umask allows. Leftovers of an interrupted write (``.tmp-*``) are removed by
the next run. A folder holding a different study is refused.
"""
from __future__ import annotations

import argparse
import csv
import errno
import fcntl
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import socket
import stat
import sys
import tempfile
import zlib
from typing import Iterable, Sequence

TABLES = ("runs", "epochs", "steps", "layers")
KEYS = ("run_id", "activation", "seed", "init")
RUN_FILES = ("run.json", "epochs.csv", "steps.csv", "layers.csv")
TMP_PREFIX = ".tmp-"
STATUS_COMPLETE, STATUS_INCOMPLETE = "complete", "incomplete"
_OWN_DEBRIS = (TMP_PREFIX, ".write-test-")


class ResultsError(RuntimeError):
    """A results folder that cannot be used as it is; the message says why and what to do."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def check_target(path: str) -> None:
    """Raise ResultsError unless ``path`` is missing or a regular file (not a link, FIFO, device, folder)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ResultsError(f"cannot use {path} ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ResultsError(f"{path} is a {_kind(st.st_mode)}, not a regular file; refusing to replace it "
                           "(only regular files inside the output are written)")


def ensure_dir(path: str) -> None:
    """Create folder ``path`` (and parents) if missing; ResultsError if it is something else (a link too)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"output folder {path} is not writable ({exc.strerror}); choose another --out-dir") from None
        return
    except OSError as exc:
        raise ResultsError(f"output folder {path} is not writable ({exc.strerror}); choose another --out-dir") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ResultsError(f"{path} is a {_kind(st.st_mode)}, not a folder; refusing to write into it")


def _write_error(path: str, exc: OSError) -> ResultsError:
    hint = {errno.ENOSPC: "free some space or choose another --out-dir", errno.EDQUOT: "over quota",
            errno.EROFS: "the file system is read-only; choose another --out-dir"}.get(exc.errno, "check its permissions")
    return ResultsError(f"cannot write {path} ({exc.strerror or exc}); {hint}")


def atomic_write(path: str, data: str | bytes) -> None:
    """Write ``data`` to regular file ``path`` through a temporary file in the same folder and a rename.

    Raises ResultsError (one line naming the path) when the target is not a regular file or the write
    fails (disk full, read-only, immutable); the temporary file is removed.
    """
    check_target(path)
    folder = os.path.dirname(path) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix="-" + os.path.basename(path))
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


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


DAMAGED_GZ = (EOFError, gzip.BadGzipFile, zlib.error)     # what reading a truncated or corrupt .gz raises


def plain_or_gz(path: str) -> str:
    """``path``, or ``path``.gz where only that exists (a compressed table); pandas.read_csv reads either."""
    return path + ".gz" if not os.path.exists(path) and os.path.exists(path + ".gz") else path


def table_path(folder: str, table: str) -> str:
    """The file of merged ``table`` in a study folder: ``<table>.csv`` or, in a compressed study, ``<table>.csv.gz``."""
    return plain_or_gz(os.path.join(folder, f"{table}.csv"))


def read_table(path: str) -> bytes:
    """The CSV bytes of a table file, decompressed if it is ``.gz``."""
    with open(path, "rb") as fh:
        data = fh.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def compress(folder: str) -> list[str]:
    """Store the merged epochs, steps and layers tables of a study folder as ``<table>.csv.gz`` (gzip level 9,
    no name or time stamp, so the same table always gives the same bytes), replacing the ``.csv``; runs.csv,
    which marks the folder as a study, stays plain. The CSV inside is unchanged byte for byte, so
    ``.merged.json`` still vouches for it, the same command still trains nothing, and every reader of the
    project reads the folder as before. Returns the files written."""
    out = []
    for table in TABLES[1:]:
        plain = os.path.join(folder, f"{table}.csv")
        if not os.path.isfile(plain):
            continue
        atomic_write(plain + ".gz", gzip.compress(read_table(plain), compresslevel=9, mtime=0))
        os.remove(plain)
        out.append(plain + ".gz")
    return out


def group_id(run_ids: Iterable[str]) -> str:
    """The name of a group's part folder: a hash of its sorted run ids."""
    return hashlib.sha1(",".join(sorted(run_ids)).encode()).hexdigest()[:12]


class Lock:
    """An exclusive ``fcntl.flock`` on ``<folder>/.lock`` (holding the owner's host and pid for messages).

    The OS releases it when its holder dies, so a stale lock needs no takeover; the file is removed on
    release, and a process that locked a file just removed retries on the new one, so two processes
    never both hold it.
    """

    def __init__(self, folder: str):
        self.path = os.path.join(folder, ".lock")
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> None:
        check_target(self.path)
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE)
            except OSError as exc:
                raise ResultsError(f"cannot create lock file {self.path} ({exc.strerror}); "
                                   "choose another --out-dir") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise ResultsError(
                    f"results folder {os.path.dirname(self.path)} is in use by another study ({owner}); wait for "
                    "it to finish, or pick another --name") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it between our open and flock: lock the new file
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
            self.fd = fd
            return
        raise ResultsError(f"could not lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_owner(fd: int) -> str:
    try:
        host, pid = os.pread(fd, 200, 0).decode(errors="replace").split()
        return f"process {int(pid)} on {host}"
    except (OSError, ValueError):
        return "process unknown"


def lock_is_held(folder: str) -> bool:
    """Whether a study is writing ``folder`` now (a reader's test; takes no lock)."""
    try:
        fd = os.open(os.path.join(folder, ".lock"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def check_writable(folder: str) -> None:
    """Create ``folder`` if needed; raise ResultsError if it cannot be written."""
    ensure_dir(folder)
    try:
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise ResultsError(f"output folder {folder} is not writable ({exc.strerror}); choose another --out-dir") from None


def config_identity(config: dict) -> dict:
    """The fields of a study's config that change its numbers (not where data or results live)."""
    return {k: v for k, v in config.items() if k not in ("out_dir", "data_dir", "download", "time_activations")}


def config_diff(old: dict, new: dict, defaults: dict | None = None) -> tuple[list[str], dict, dict]:
    """(sorted fields that change numbers and differ, old identity, new identity); fields added since ``old``
    was written take their ``defaults``."""
    a, b = config_identity({**(defaults or {}), **old}), config_identity(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)), a, b


class Store:
    """Reads and writes one study folder. ``open()`` takes the lock; use as a context manager."""

    def __init__(self, folder: str):
        self.folder = folder
        self.parts = os.path.join(folder, "parts")
        self.lock = Lock(folder)
        self.where: dict[str, str] = {}
        self.legacy = False

    # --- lifecycle

    def __enter__(self) -> "Store":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Create the folder, take the lock, remove what an interrupted writer left (``.tmp-*``)."""
        check_writable(self.folder)
        self.lock.acquire()
        try:
            self._clean()
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def _clean(self) -> None:
        for folder in (self.folder, self.parts):
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if not name.startswith(_OWN_DEBRIS):
                    continue
                path = os.path.join(folder, name)
                try:
                    if stat.S_ISDIR(os.lstat(path).st_mode):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except OSError:
                    pass

    # --- identity

    def check_study(self, config: dict, groups: Sequence[Sequence[str]], defaults: dict | None = None) -> bool:
        """Refuse a folder that holds another study (another config or grouping, or not a study at all).

        Returns True for a folder of the earlier one-run layout (no groups recorded): usable only when every
        run in it is finished (nothing to retrain, so no grouping to match)."""
        path = os.path.join(self.folder, "study.json")
        name = os.path.basename(os.path.normpath(self.folder))
        hint = (f"pick another --name (e.g. --name {name}-2) or --out-dir for this study, or delete "
                f"{self.folder} to start it again")
        check_target(path)
        if not os.path.exists(path):
            others = [n for n in os.listdir(self.folder) if n != ".lock" and not n.startswith(_OWN_DEBRIS)]
            if others:
                raise ResultsError(f"folder {self.folder} is not empty and holds no study.json (it has "
                                   f"{', '.join(sorted(others)[:3])}{', ...' if len(others) > 3 else ''}); "
                                   f"refusing to write into it: {hint}")
            return False
        try:
            with open(path, "rb") as fh:
                old = json.loads(fh.read().decode())
            old_config, old_groups = old["config"], old.get("groups")
            if not isinstance(old_config, dict):
                raise ValueError("config is not a table")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResultsError(f"{path} is unreadable or not a study record ({type(exc).__name__}); {hint}") from None
        diff, a, b = config_diff(old_config, config, defaults)
        if diff:
            k = diff[0]
            raise ResultsError(
                f"folder {self.folder} holds a different study ({k} was {_short(a.get(k))}, now {_short(b.get(k))}"
                f"{f'; {len(diff) - 1} more setting(s) differ' if len(diff) > 1 else ''}); {hint}")
        if old_groups is None:
            return True
        if sorted(map(sorted, old_groups)) != sorted(map(sorted, groups)):
            raise ResultsError(f"folder {self.folder} holds this study batched into other groups (made by "
                               f"another version of the engine); its numbers would differ; {hint}")
        return False

    # --- reading

    def committed(self) -> dict[str, list[str]]:
        """group_id -> run ids of every committed group folder (not verified). A folder of the earlier
        one-run layout (``parts/<run_id>/`` holding the files and a manifest of their sums) is a group of one."""
        out = {}
        try:
            names = sorted(os.listdir(self.parts))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for gid in names:
            if gid.startswith("."):
                continue
            try:
                with open(os.path.join(self.parts, gid, "manifest.json"), "rb") as fh:
                    manifest = json.loads(fh.read().decode())
                out[gid] = list(manifest["runs"]) if "runs" in manifest else [gid]
            except (OSError, ValueError, KeyError, TypeError):
                out[gid] = []
        return out

    def _files(self, gid: str, manifest: dict) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """(run ids, file -> sha256, run id -> its folder) of a group folder in either layout."""
        part = os.path.join(self.parts, gid)
        if "runs" in manifest:
            runs, sums = manifest["runs"], manifest["files"]
            if gid != group_id(runs) or set(sums) != {f"{r}/{f}" for r in runs for f in RUN_FILES}:
                raise ValueError("manifest does not match the folder")
            return runs, sums, {r: os.path.join(part, r) for r in runs}
        if set(manifest) != set(RUN_FILES):
            raise ValueError("manifest does not match the folder")
        self.legacy = True
        return [gid], manifest, {gid: part}

    def finished(self) -> dict[str, dict]:
        """run_id -> run row for every run of a committed group whose files pass their checksums;
        ResultsError (naming the group folder) if any is corrupt."""
        done = {}
        self.where: dict[str, str] = {}
        for gid in self.committed():
            part = os.path.join(self.parts, gid)
            try:
                with open(os.path.join(part, "manifest.json"), "rb") as fh:
                    manifest = json.loads(fh.read().decode())
                runs, sums, where = self._files(gid, manifest)
                for name, digest in sums.items():
                    with open(os.path.join(part, name), "rb") as fh:
                        if _sha(fh.read()) != digest:
                            raise ValueError(f"{name} does not match its checksum")
                for r in runs:
                    with open(os.path.join(where[r], "run.json"), "rb") as fh:
                        done[r] = json.loads(fh.read().decode())
                self.where.update(where)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ResultsError(
                    f"results of group {gid} in {part} are corrupted or truncated ({_short(exc)}); delete that "
                    "folder to retrain its runs (the same numbers: a group is trained as a whole), then run "
                    "the same command again") from None
        return done

    # --- writing

    def write_group(self, records: Sequence) -> str:
        """Write one finished group's runs into a temporary folder, then commit it by one rename."""
        ids = [rec.row["run_id"] for rec in records]
        gid = group_id(ids)
        ensure_dir(self.parts)
        final = os.path.join(self.parts, gid)
        tmp = None
        try:
            tmp = tempfile.mkdtemp(dir=self.parts, prefix=f"{TMP_PREFIX}{gid}-")
            os.chmod(tmp, _DIR_MODE)
            sums = {}
            for rec in records:
                rid = rec.row["run_id"]
                os.mkdir(os.path.join(tmp, rid))
                keys = {k: rec.row[k] for k in KEYS}
                files = {
                    "run.json": json.dumps(rec.row, indent=1).encode(),
                    "epochs.csv": to_csv([{**keys, **e} for e in rec.epochs]).encode(),
                    "steps.csv": to_csv([{**keys, **s} for s in rec.steps]).encode(),
                    "layers.csv": to_csv([{**keys, **s} for s in rec.layers]).encode(),
                }
                for name, data in files.items():
                    _write_new(os.path.join(tmp, rid, name), data)
                    sums[f"{rid}/{name}"] = _sha(data)
            _write_new(os.path.join(tmp, "manifest.json"),
                       json.dumps({"runs": ids, "files": sums}, indent=1, sort_keys=True).encode())
            if os.path.lexists(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
            tmp = None
            _fsync_dir(self.parts)
        except OSError as exc:
            raise _write_error(final, exc) from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return gid

    def merge(self, order: Iterable[str], log=None) -> dict[str, dict]:
        """Rebuild the four merged tables from the finished runs in ``order``; return ``finished()``'s rows.

        A merged table whose bytes differ from what this program last wrote (or was about to write when
        it was interrupted) was edited by hand: it is kept beside as ``<table>.csv.edited`` and named.
        """
        rows = self.finished()
        where = self.where
        ids = [i for i in order if i in rows]
        texts = {"runs": to_csv([rows[i] for i in ids])}
        for table in TABLES[1:]:
            chunks, header = [], None
            for i in ids:
                with open(os.path.join(where[i], f"{table}.csv")) as fh:
                    lines = fh.read().splitlines(keepends=True)
                if not lines:
                    continue
                header = header or lines[0]
                chunks.extend(lines[1:])
            texts[table] = (header or "run_id\n") + "".join(chunks)
        new = {t: _sha(x.encode()) for t, x in texts.items()}
        sums_path = os.path.join(self.folder, ".merged.json")
        known = _read_sums(sums_path)
        keep = {}
        for table in TABLES:
            path = table_path(self.folder, table)
            check_target(path)
            keep[table] = [new[table]]
            if not os.path.exists(path):
                continue
            try:
                current = _sha(read_table(path))
            except DAMAGED_GZ:  # kept beside like an edited table
                current = ""
            if table in known and current not in known[table] and current != new[table]:
                check_target(path + ".edited")
                os.replace(path, path + ".edited")
                (log or print)(f"warning: {path} was changed since this program wrote it; kept as "
                               f"{os.path.basename(path)}.edited and rebuilt from parts/")
            elif current != new[table]:
                keep[table].insert(0, current)
        # until every table is written, each may hold its current or its new version: both are ours
        atomic_write(sums_path, json.dumps(keep))
        for table, text in texts.items():
            if keep[table] != [new[table]] or not os.path.exists(table_path(self.folder, table)):
                plain = os.path.join(self.folder, f"{table}.csv")
                atomic_write(plain, text)
                if os.path.exists(plain + ".gz"):  # the older, compressed version
                    os.remove(plain + ".gz")
        atomic_write(sums_path, json.dumps({t: [new[t]] for t in TABLES}))
        return rows

    def merged_intact(self) -> bool:
        """True iff every merged table exists with the bytes this program last wrote (.merged.json), compressed
        or not."""
        try:
            last = _read_sums(os.path.join(self.folder, ".merged.json"))
            for table in TABLES:
                if last.get(table) != [_sha(read_table(table_path(self.folder, table)))]:
                    return False
        except (OSError, ValueError, KeyError, TypeError, *DAMAGED_GZ):
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


def _read_sums(path: str) -> dict[str, list[str]]:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode())
        return {t: [v] if isinstance(v, str) else list(v) for t, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _short(value, n: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[:n - 1] + "…"


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
        "torch_threads": torch.get_num_threads(), "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``), or None: MKL and oneDNN pick their kernels by CPU, so float32
    results can differ in the last bits from one CPU model to another."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m empirical.results compress FOLDER...``: see ``compress``."""
    ap = argparse.ArgumentParser(prog="python -m empirical.results", description=(
        "compress: store each study folder's epochs, steps and layers tables as <table>.csv.gz (as the shipped "
        "results/ are); everything that reads a study reads them as before"))
    ap.add_argument("command", choices=["compress"])
    ap.add_argument("folders", nargs="+", metavar="FOLDER", help="study folders (each with runs.csv)")
    args = ap.parse_args(argv)
    for folder in args.folders:
        if not os.path.isfile(os.path.join(folder, "runs.csv")):
            print(f"error: {folder} is not a study folder (it has no runs.csv)", file=sys.stderr)
            return 2
    for folder in args.folders:
        lock = Lock(folder)
        try:
            lock.acquire()
            for path in compress(folder):
                print(path)
        except ResultsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
