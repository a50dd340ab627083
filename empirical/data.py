"""Data sets as in-memory float32 tensors, converted once (never per-item transforms in a loop).

``load(DataSpec(...)) -> Dataset`` gives ``x`` of shape ``(N, C, H, W)`` (``(N, C*H*W)`` with
``flatten=True``) and int64 labels, for:

- ``digits``: scikit-learn's ``load_digits`` (1797 images 8x8, shipped in the wheel, works offline; the
  default). Pixels are integers 0..16, scaled by 1/16. It has no official split: a stratified split
  (``test_fraction`` of each class, largest-remainder rounding so the test total is
  ``round(N * test_fraction)``) drawn with ``numpy.random.RandomState(SPLIT_SEED = 0)`` -- fixed, not the
  run seed, so every run on every machine sees the same test set (1348 train / 449 test at 0.25).
- ``mnist``, ``fashion-mnist``: torchvision's readers of the IDX files under
  ``<data_dir>/MNIST/raw`` (``<data_dir>/FashionMNIST/raw``): ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
  uncompressed. The header of each file (magic ``00 00 08 ndim``, big-endian sizes) and its length are
  checked here first, so a truncated or foreign file is named in one line.
- ``cifar10``: torchvision's reader of ``<data_dir>/cifar-10-batches-py``. torchvision checks the md5
  of every file against the official release; a mismatch is reported as "corrupted or not the official
  files (md5 mismatch)". The format itself is Python pickle, and unpickling runs code chosen by whoever
  wrote the file: only load CIFAR files from a source you trust (torchvision has the same exposure).
- ``mnist1d``: MNIST-1D (Greydanus 2020) from the ``mnist1d`` package (a dependency), generated locally
  from its templates (no download) with the package's defaults (4000 train / 1000 test signals of length 40, its own
  split), shaped ``(N, 1, 1, 40)`` so the ``(N, C, H, W)`` contract holds.

Normalisation (``normalize=True``): pixel ``p`` in [0, 1] becomes ``(p - mean_c) / std_c`` with the
per-channel mean and population standard deviation (ddof = 0) of the *whole* train split, computed
before any ``train_size`` subset is drawn, so every subset size and seed sees the same input scaling
and no test example enters the statistics. With ``normalize=False`` the recorded mean/std are 0 and 1.

Low-sample subsets (``train_size=n``): ``stratified_subset`` orders the train split round-robin over
classes (class order and within-class order drawn from ``RandomState(seed)``) and keeps the first ``n``:
class counts differ by at most one (unless a class runs out), the same seed gives the same examples
for every activation, and for one seed a smaller subset is contained in a larger one.

Cache: after the first conversion of raw files the uint8 tensors go to
``<data_dir>/actlab-cache/<name>-<split>.pt`` (written atomically, read with ``weights_only=True``,
validated on every read by a sha256 of its whole payload (x and y bytes), shape, dtype and the size/mtime
of the raw files it came from; rebuilt when bad or stale, so a flipped bit is never trained on; skipped
silently when the directory is not writable).
"""
from __future__ import annotations

import difflib
import hashlib
import logging
import math
import os
import pickle
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS", "SPLIT_SEED", "DataError", "DataSpec", "Dataset",
    "load", "sample_images", "stratified_split", "stratified_subset",
]

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "mnist1d")
SPLIT_SEED = 0
CACHE_DIRNAME = "actlab-cache"
_CACHE_FORMAT = 2
_ALIASES = {
    "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "mnist-1d": "mnist1d",
}
_log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data set could not be loaded: one line saying what was wrong and what is allowed."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class DataSpec:
    """What to load. ``data_dir`` is ``~``-expanded; ``test_fraction`` applies only to sets without an
    official split (digits); ``seed`` only picks the ``train_size`` subset."""

    name: str = "digits"
    data_dir: str = "~/.cache/actlab/data"
    download: bool = False
    train_size: int | None = None
    test_fraction: float = 0.25
    seed: int = 0
    normalize: bool = True
    flatten: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _canonical_name(self.name))
        object.__setattr__(self, "data_dir", os.path.expanduser(os.fspath(self.data_dir)))
        ts = self.train_size
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, np.integer)) or ts < 1):
            raise DataError(f"train_size must be a positive integer or None, got {ts!r}")
        if ts is not None:
            object.__setattr__(self, "train_size", int(ts))
        tf = self.test_fraction
        if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0.0 < float(tf) < 1.0:
            raise DataError(f"test_fraction must be a number strictly between 0 and 1, got {tf!r}")
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < 2**32:
            raise DataError(f"seed must be an integer in 0..{2**32 - 1}, got {s!r}")


def _canonical_name(name: object) -> str:
    if not isinstance(name, str):
        raise DataError(f"data set name must be a string, got {name!r}; allowed: {', '.join(DATASETS)}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key in DATASETS:
        return key
    close = difflib.get_close_matches(key, DATASETS, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"unknown data set {name!r}{hint}; allowed: {', '.join(DATASETS)}")


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Tensors ready for slicing. ``x_*`` float32, ``y_*`` int64; ``input_shape`` is one example as
    delivered (``(C, H, W)`` or ``(C*H*W,)``), ``image_shape`` always ``(C, H, W)``; ``mean``/``std``
    are the per-channel values subtracted/divided (0 and 1 when not normalised); ``train_indices``
    are the rows of the full train split kept by ``train_size`` (all of them otherwise)."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_indices: Tensor
    spec: DataSpec = field(default_factory=DataSpec)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"classes={self.num_classes}, mean={self.mean}, std={self.std})")


# --------------------------------------------------------------------------- splits and subsets

def stratified_split(y: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Per-class split: class ``c`` of size ``n_c`` sends ``floor(n_c f)`` or one more examples to the test
    set (largest remainders, ties to the lower class, total ``floor(N f + 1/2)``), chosen by a
    ``RandomState(seed)`` permutation per class (in class order). Returns sorted (train, test) indices."""
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * float(test_fraction)
    n_test = np.floor(exact).astype(np.int64)
    extra = int(math.floor(len(y) * float(test_fraction) + 0.5)) - int(n_test.sum())
    if extra > 0:
        order = np.lexsort((np.arange(len(classes)), -(exact - n_test)))
        n_test[order[:extra]] += 1
    rs = np.random.RandomState(seed)
    train, test = [], []
    for c, k in zip(classes, n_test):
        perm = rs.permutation(np.flatnonzero(y == c))
        test.append(perm[:k])
        train.append(perm[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` examples as equal per class as possible: classes are visited round-robin
    in a ``RandomState(seed)`` order, each giving its next example of a seeded permutation. The subset of
    size ``n`` is a prefix of one seeded ordering, so subsets of one seed are nested."""
    y = np.asarray(y)
    rs = np.random.RandomState(seed)
    classes = np.unique(y)
    rank = np.empty(len(classes), dtype=np.int64)
    rank[rs.permutation(len(classes))] = np.arange(len(classes))
    idx, round_no, cls_rank = [], [], []
    for i, c in enumerate(classes):
        perm = rs.permutation(np.flatnonzero(y == c))
        idx.append(perm)
        round_no.append(np.arange(len(perm)))
        cls_rank.append(np.full(len(perm), rank[i]))
    idx, round_no, cls_rank = map(np.concatenate, (idx, round_no, cls_rank))
    order = np.lexsort((cls_rank, round_no))
    return np.sort(idx[order[:n]])


# --------------------------------------------------------------------------- raw splits

@dataclass(frozen=True, eq=False)
class _Raw:
    """Both splits before normalisation: x (N, C, H, W) uint8 (or float32 with scale 1)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[str, ...]
    scale: float


def _digits(spec: DataSpec) -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, te = stratified_split(d.target, spec.test_fraction, SPLIT_SEED)
    tr, te = torch.from_numpy(tr), torch.from_numpy(te)
    return _Raw(x[tr], y[tr], x[te], y[te], tuple(str(i) for i in range(10)), 16.0)


# --- cache

def _cache_path(spec: DataSpec, split: str) -> str:
    return os.path.join(spec.data_dir, CACHE_DIRNAME, f"{spec.name}-{split}.pt")


def _signature(paths: list[str]) -> list[list] | None:
    """(name, size, mtime_ns) of every raw file, or None when any is missing."""
    sig = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        sig.append([os.path.basename(p), int(st.st_size), int(st.st_mtime_ns)])
    return sig


def _payload_sha(x: Tensor, y: Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _read_cache(path: str, item_shape: tuple, dtype: torch.dtype, num_classes: int,
                signature: list | None) -> tuple[Tensor, Tensor, tuple[str, ...]] | None:
    if not os.path.isfile(path):
        return None
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
        x, y, classes = obj["x"], obj["y"], tuple(obj["classes"])
        ok = (obj.get("format") == _CACHE_FORMAT
              and isinstance(x, Tensor) and isinstance(y, Tensor)
              and x.dtype == dtype and x.dim() == 4 and tuple(x.shape[1:]) == tuple(item_shape)
              and y.dtype == torch.int64 and y.dim() == 1 and len(y) == len(x) > 0
              and int(y.min()) >= 0 and int(y.max()) < num_classes
              and len(classes) == num_classes and all(isinstance(c, str) for c in classes)
              and (signature is None or obj.get("source") == signature)
              and obj.get("sha256") == _payload_sha(x, y))
    except Exception as exc:  # any unreadable cache is simply rebuilt
        _log.info("ignoring unreadable cache %s (%s)", path, _one_line(exc))
        return None
    if not ok:
        _log.info("ignoring stale or malformed cache %s", path)
        return None
    return x, y, classes


def _write_cache(path: str, x: Tensor, y: Tensor, classes: tuple[str, ...], signature: list | None) -> bool:
    """Atomic write (temp file in the same directory, then ``os.replace``); False if not writable."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": _CACHE_FORMAT, "x": x.contiguous(), "y": y.contiguous(),
                        "classes": list(classes), "source": signature, "sha256": _payload_sha(x, y)}, f)
        os.replace(tmp, path)
        return True
    except OSError as exc:
        _log.info("not caching %s (%s)", path, _one_line(exc))
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _cached(spec: DataSpec, raw_paths: list[str], item_shape: tuple, dtype: torch.dtype,
            build: Callable[[], _Raw], scale: float) -> _Raw:
    """Both splits from the cache when valid for the present raw files, else ``build()`` and cache."""
    sig = _signature(raw_paths)
    paths = {s: _cache_path(spec, s) for s in ("train", "test")}
    hits = {s: _read_cache(p, item_shape, dtype, 10, sig) for s, p in paths.items()}
    if all(h is not None for h in hits.values()) and hits["train"][2] == hits["test"][2]:
        (xtr, ytr, classes), (xte, yte, _) = hits["train"], hits["test"]
        return _Raw(xtr, ytr, xte, yte, classes, scale)
    raw = build()
    sig = _signature(raw_paths)
    _write_cache(paths["train"], raw.x_train, raw.y_train, raw.classes, sig)
    _write_cache(paths["test"], raw.x_test, raw.y_test, raw.classes, sig)
    return raw


def _missing_error(name: str, folder: str, expected: list[str], missing: list[str]) -> DataError:
    what = (f"no data found under {folder} (looked for {', '.join(expected)})" if len(missing) == len(expected)
            else f"incomplete data under {folder} (missing {', '.join(missing)})")
    return DataError(f"{name}: {what}; pass --download to fetch it (needs network) or put the files there")


def _download_error(name: str, folder: str, exc: BaseException) -> DataError:
    return DataError(f"{name}: download failed ({type(exc).__name__}: {_one_line(exc)}); "
                     f"check the network or put the files under {folder}")


# --- MNIST-format (IDX)

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _check_idx(path: str, ndim: int) -> tuple[int, ...]:
    """Sizes from the header of an IDX file of unsigned bytes, after checking magic and file length."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    if len(head) < 4:
        raise DataError(f"{path}: truncated ({size} bytes; an IDX file starts with a 4-byte magic number)")
    if head[:3] != b"\x00\x00\x08" or head[3] != ndim:
        raise DataError(f"{path}: wrong magic number {head[:4].hex(' ')} (expected 00 00 08 {ndim:02x}: "
                        f"an IDX file of unsigned bytes with {ndim} dimension(s))")
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated ({size} bytes, shorter than its {4 + 4 * ndim}-byte header)")
    dims = struct.unpack(">" + "I" * ndim, head[4:])
    expected = 4 + 4 * ndim + math.prod(dims)
    if size < expected:
        raise DataError(f"{path}: truncated ({size} bytes; the header {dims} needs {expected})")
    if size > expected:
        raise DataError(f"{path}: {size - expected} bytes more than the header {dims} describes ({expected})")
    return dims


def _idx_loader(name: str, tv_name: str) -> Callable[[DataSpec], _Raw]:
    def load_idx(spec: DataSpec) -> _Raw:
        folder = os.path.join(spec.data_dir, tv_name, "raw")
        paths = [os.path.join(folder, f) for f in _IDX_FILES]

        def build() -> _Raw:
            import torchvision.datasets as tvd

            cls = getattr(tvd, tv_name)
            if spec.download:
                try:
                    cls(spec.data_dir, train=True, download=True)
                except Exception as exc:
                    if not all(os.path.isfile(p) for p in paths):
                        raise _download_error(name, folder, exc) from exc
            missing = [f for f, p in zip(_IDX_FILES, paths) if not os.path.isfile(p)]
            if missing:
                raise _missing_error(name, folder, list(_IDX_FILES), missing)
            tr_img, tr_lab, te_img, te_lab = (_check_idx(p, 3 if "images" in p else 1) for p in paths)
            for img, lab, pi, pl in ((tr_img, tr_lab, paths[0], paths[1]), (te_img, te_lab, paths[2], paths[3])):
                if img[0] != lab[0]:
                    raise DataError(f"{name}: {pi} holds {img[0]} images but {pl} holds {lab[0]} labels")
            if tr_img[1:] != te_img[1:]:
                raise DataError(f"{name}: train images are {tr_img[1]}x{tr_img[2]} but test images "
                                f"{te_img[1]}x{te_img[2]} ({folder})")
            out = []
            for train, lab_path in ((True, paths[1]), (False, paths[3])):
                try:
                    ds = cls(spec.data_dir, train=train, download=False)
                except Exception as exc:
                    raise DataError(f"{name}: torchvision could not read {folder} "
                                    f"({type(exc).__name__}: {_one_line(exc)})") from exc
                x, y = ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)
                if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
                    raise DataError(f"{name}: {lab_path} has label {int(y.max())}; allowed labels are 0..9")
                out += [x, y]
            return _Raw(*out, tuple(cls.classes), 255.0)

        return _cached(spec, paths, (1, 28, 28), torch.uint8, build, 255.0)

    return load_idx


# --- CIFAR-10 (pickled batches)

_CIFAR_FOLDER = "cifar-10-batches-py"


def _cifar_file_problem(path: str, meta: bool) -> str | None:
    """Why a CIFAR-10 file cannot be used, or None. Unpickles the file (see the module docstring)."""
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except Exception as exc:
        return f"not a readable pickle ({type(exc).__name__}: {_one_line(exc)})"
    if not isinstance(obj, dict):
        return f"holds a {type(obj).__name__}, expected a dict"
    if meta:
        names = obj.get("label_names")
        if not (isinstance(names, list) and len(names) == 10 and all(isinstance(n, str) for n in names)):
            return "has no list of 10 strings under 'label_names'"
        return None
    data, labels = obj.get("data"), obj.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        return f"'data' must be a uint8 array of shape (n, 3072), got {type(data).__name__} {shape}"
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        return f"'labels' must be a list of {data.shape[0]} integers"
    if not all(isinstance(v, (int, np.integer)) and 0 <= v <= 9 for v in labels):
        return "'labels' must be integers 0..9"
    return None


def _cifar10(spec: DataSpec) -> _Raw:
    folder = os.path.join(spec.data_dir, _CIFAR_FOLDER)
    batch_files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    all_files = batch_files + ["batches.meta"]
    paths = [os.path.join(folder, f) for f in all_files]

    def build() -> _Raw:
        import torchvision.datasets.cifar as tvc

        if spec.download:
            try:
                tvc.CIFAR10(spec.data_dir, train=True, download=True)
            except Exception as exc:
                if not all(os.path.isfile(p) for p in paths):
                    raise _download_error("cifar10", folder, exc) from exc
        missing = [f for f, p in zip(all_files, paths) if not os.path.isfile(p)]
        if missing:
            raise _missing_error("cifar10", folder, all_files, missing)
        official = dict(tvc.CIFAR10.train_list + tvc.CIFAR10.test_list)
        official[tvc.CIFAR10.meta["filename"]] = tvc.CIFAR10.meta["md5"]
        for f, p in zip(all_files, paths):
            if not tvc.check_integrity(p, official[f]):
                raise DataError(f"cifar10: {p} is corrupted or not the official files (md5 mismatch); "
                                f"delete {folder} and pass --download, or put the official files there")

        def bad_file(exc: BaseException | None) -> DataError:
            for f, p in zip(all_files, paths):
                problem = _cifar_file_problem(p, meta=(f == "batches.meta"))
                if problem:
                    return DataError(f"cifar10: {p}: {problem}")
            return DataError(f"cifar10: torchvision could not read {folder} ({type(exc).__name__}: {_one_line(exc)})")

        out = []
        classes: tuple[str, ...] = ()
        for train in (True, False):
            try:
                ds = tvc.CIFAR10(spec.data_dir, train=train, download=False)
            except Exception as exc:
                raise bad_file(exc) from exc
            data = np.asarray(ds.data)
            if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or len(ds.targets) != len(data):
                raise bad_file(ValueError(f"got data {data.shape} and {len(ds.targets)} labels"))
            y = torch.as_tensor(np.asarray(ds.targets, dtype=np.int64))
            if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
                raise bad_file(ValueError("labels outside 0..9"))
            out += [torch.from_numpy(data).permute(0, 3, 1, 2).contiguous(), y]
            classes = tuple(str(c) for c in ds.classes)
        if len(classes) != 10:
            raise bad_file(ValueError(f"{len(classes)} label names"))
        return _Raw(*out, classes, 255.0)

    return _cached(spec, paths, (3, 32, 32), torch.uint8, build, 255.0)


# --- MNIST-1D (generated offline by the mnist1d package)

def _mnist1d(spec: DataSpec) -> _Raw:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise DataError(f"mnist1d: the package is not installed ({_one_line(exc)}); "
                        f"pip install mnist1d to use it, or pick one of {', '.join(DATASETS[:-1])}") from exc
    import random

    import mnist1d

    args = get_dataset_args()
    source = [["mnist1d", str(getattr(mnist1d, "__version__", "?")), repr(sorted(vars(args).items()))]]

    def build() -> _Raw:
        np_state, py_state = np.random.get_state(), random.getstate()
        try:  # make_dataset reseeds the global generators; keep the caller's streams intact
            d = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)

        def x_of(a):
            return torch.from_numpy(np.asarray(a, dtype=np.float32)).reshape(len(a), 1, 1, -1).contiguous()

        def y_of(a):
            return torch.from_numpy(np.asarray(a, dtype=np.int64))

        return _Raw(x_of(d["x"]), y_of(d["y"]), x_of(d["x_test"]), y_of(d["y_test"]),
                    tuple(str(i) for i in range(10)), 1.0)

    paths = {s: _cache_path(spec, s) for s in ("train", "test")}
    length = int(args.final_seq_length)
    hits = {s: _read_cache(p, (1, 1, length), torch.float32, 10, source) for s, p in paths.items()}
    if all(h is not None for h in hits.values()):
        return _Raw(hits["train"][0], hits["train"][1], hits["test"][0], hits["test"][1], hits["train"][2], 1.0)
    raw = build()
    _write_cache(paths["train"], raw.x_train, raw.y_train, raw.classes, source)
    _write_cache(paths["test"], raw.x_test, raw.y_test, raw.classes, source)
    return raw


_LOADERS: dict[str, Callable[[DataSpec], _Raw]] = {
    "digits": _digits,
    "mnist": _idx_loader("mnist", "MNIST"),
    "fashion-mnist": _idx_loader("fashion-mnist", "FashionMNIST"),
    "cifar10": _cifar10,
    "mnist1d": _mnist1d,
}


# --------------------------------------------------------------------------- normalisation and assembly

def _channel_stats(x: Tensor, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``x / scale`` over (N, H, W); exact via a histogram for uint8."""
    means, stds = [], []
    for c in range(x.shape[1]):
        if x.dtype == torch.uint8:
            h = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
            v = torch.arange(256, dtype=torch.float64) / scale
            m = float((h * v).sum() / h.sum())
            s = math.sqrt(float((h * (v - m) ** 2).sum() / h.sum()))
        else:
            xc = x[:, c].double() / scale
            m, s = float(xc.mean()), float(xc.std(unbiased=False))
        means.append(m)
        stds.append(s if s > 0 else 1.0)
    return tuple(means), tuple(stds)


def _to_float(x: Tensor, scale: float, mean: tuple[float, ...], std: tuple[float, ...], flatten: bool) -> Tensor:
    out = x.to(torch.float32).div_(scale)
    view = (1, -1, 1, 1)
    out.sub_(torch.tensor(mean, dtype=torch.float32).view(view)).div_(torch.tensor(std, dtype=torch.float32).view(view))
    return out.reshape(len(out), -1) if flatten else out


def load(spec: DataSpec | None = None) -> Dataset:
    """Load ``spec.name`` as float32 tensors (see the module docstring for splits, normalisation, cache).

    Raises ``DataError`` (one line) for unknown names, missing or corrupt files, and a ``train_size``
    outside ``num_classes .. len(train split)``."""
    spec = DataSpec() if spec is None else spec
    raw = _LOADERS[spec.name](spec)
    num_classes = len(raw.classes)
    n_avail = len(raw.y_train)
    if spec.train_size is None:
        idx = torch.arange(n_avail)
    else:
        if not num_classes <= spec.train_size <= n_avail:
            raise DataError(f"train_size={spec.train_size} is out of range for {spec.name}: allowed "
                            f"{num_classes}..{n_avail} (at least one example per class, at most the whole train split)")
        idx = torch.from_numpy(stratified_subset(raw.y_train.numpy(), spec.train_size, spec.seed))
    channels = raw.x_train.shape[1]
    if spec.normalize:
        mean, std = _channel_stats(raw.x_train, raw.scale)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    x_train = _to_float(raw.x_train[idx], raw.scale, mean, std, spec.flatten)
    x_test = _to_float(raw.x_test, raw.scale, mean, std, spec.flatten)
    return Dataset(
        name=spec.name, x_train=x_train, y_train=raw.y_train[idx].clone(), x_test=x_test,
        y_test=raw.y_test.clone(), num_classes=num_classes, input_shape=tuple(x_train.shape[1:]),
        image_shape=tuple(raw.x_train.shape[1:]), classes=raw.classes, mean=mean, std=std,
        train_indices=idx.to(torch.int64), spec=spec,
    )


def sample_images(ds: Dataset, n_per_class: int = 1) -> tuple[Tensor, Tensor]:
    """The first ``n_per_class`` test examples of each class (fewer if a class has fewer), in class
    order, un-normalised to the [0, 1] pixel scale and shaped ``(n, C, H, W)``: for a figure."""
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise DataError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    picks = [torch.nonzero(ds.y_test == c).flatten()[:n_per_class] for c in range(ds.num_classes)]
    idx = torch.cat(picks)
    x = ds.x_test[idx].reshape(len(idx), *ds.image_shape)
    view = (1, -1, 1, 1)
    x = x * torch.tensor(ds.std, dtype=torch.float32).view(view) + torch.tensor(ds.mean, dtype=torch.float32).view(view)
    return x, ds.y_test[idx].clone()
