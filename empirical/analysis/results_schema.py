"""A study folder as typed tables: find and load studies, first/last probe, setting labels, activation order.

A study folder (written by ``empirical.run``) holds runs.csv (one row per run), layers.csv (tidy probes:
run_id, step, layer, metric, value), epochs.csv, steps.csv, study.json and optionally samples.npz and
predictions.csv. Layer ids: 0 = the input, 1..depth = hidden layers, depth + 1 = the output layer.
layers.csv also records, at step 0, each layer's drawn ``sigma_w2`` and ``sigma_b2`` (metric names) from
``theory.init``: Var W_ij = σ_w²/fan_in, Var b_i = σ_b².
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd

from empirical.results import DAMAGED_GZ, plain_or_gz, table_path

__all__ = [
    "ResultsError", "Study", "REQUIRED", "VARIANT_COLUMNS", "ACTIVATION_ORDER",
    "find_studies", "load_study", "study_folders", "read_csv", "prediction_files", "load_predictions",
    "widths", "setting_label", "groups", "setting_groups", "metric", "at_probe", "layer_values", "hidden_only",
    "variant_labels", "with_variants", "canonical_activation", "activation_order",
]

REQUIRED = {
    "runs": ("run_id", "activation", "seed", "init", "sigma_w2", "sigma_b2", "model", "widths", "depth", "status"),
    "layers": ("run_id", "step", "layer", "metric", "value"),
    "epochs": ("run_id", "epoch", "test_acc"),
    "steps": ("run_id", "step", "loss"),
}
# Columns of runs.csv that may distinguish runs of one activation within a study.
# (sigma_w2 is left out: under one init it differs per activation, e.g. the critical init.)
VARIANT_COLUMNS = ("model", "dataset", "train_size", "init", "sigma_b2", "optimizer", "lr", "batch_size",
                   "depth", "width", "widths", "epochs")
# Built-in activations in registry order (tables and legends list them first, in this order).
ACTIVATION_ORDER = ("relu", "leaky_relu", "sigmoid", "tanh", "silu", "selu", "elu", "gelu", "softplus", "mish",
                    "telu", "hardtanh")
_ALIASES = {"swish": "silu", "logistic": "sigmoid", "lrelu": "leaky_relu", "leakyrelu": "leaky_relu"}


class ResultsError(ValueError):
    """Results that cannot be read as a study folder; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Study:
    """One study folder's tables (pandas frames, read once)."""

    name: str
    folder: str
    runs: pd.DataFrame
    layers: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame
    config: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- finding, loading

def find_studies(paths: Sequence[str]) -> list[str]:
    """Study folders named by ``paths``: a folder with runs.csv, or a root whose sub-folders have one."""
    out = []
    for p in paths:
        p = os.path.expanduser(str(p))
        if not os.path.isdir(p):
            raise ResultsError(f"{p} is not a folder; give a study folder (with runs.csv) or a results root")
        if os.path.isfile(os.path.join(p, "runs.csv")):
            out.append(os.path.normpath(p))
            continue
        subs = sorted(os.path.join(p, d) for d in os.listdir(p)
                      if os.path.isfile(os.path.join(p, d, "runs.csv")))
        if not subs:
            raise ResultsError(f"{p} has no runs.csv and no sub-folder with one; run python -m empirical.run first")
        out.extend(os.path.normpath(s) for s in subs)
    return list(dict.fromkeys(out))


def load_study(folder: str) -> Study:
    """Read a study folder; ResultsError names a missing or malformed table."""
    tables = {}
    for name, cols in REQUIRED.items():
        path = table_path(folder, name)
        try:
            df = pd.read_csv(path, dtype={"run_id": str})
        except FileNotFoundError:
            raise ResultsError(f"{path} is missing; the study folder is incomplete") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, *DAMAGED_GZ) as exc:
            raise ResultsError(f"{path} cannot be read as CSV ({' '.join(str(exc).split())})") from None
        missing = [c for c in cols if c not in df.columns]
        if missing and not (name != "runs" and len(df) == 0):
            raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
        tables[name] = df
    runs = tables["runs"]
    if len(runs) == 0:
        raise ResultsError(f"{os.path.join(folder, 'runs.csv')} has no runs")
    _check_tables(folder, tables)
    for c in ("sigma_w2", "sigma_b2", "depth"):
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    layers = tables["layers"]
    if len(layers):
        layers["value"] = pd.to_numeric(layers["value"], errors="coerce")
    config = {}
    try:
        with open(os.path.join(folder, "study.json")) as fh:
            info = json.load(fh)
        config = info.get("config", {}) if isinstance(info, dict) else {}
    except (OSError, ValueError, AttributeError):
        config = {}
    if not isinstance(config, dict):  # a study.json of another schema: its config is not used
        config = {}
    name = str(config.get("name") or os.path.basename(os.path.normpath(folder)))
    return Study(name=name, folder=folder, runs=runs, layers=layers, epochs=tables["epochs"],
                 steps=tables["steps"], config=config)


_STATUSES = ("finished", "diverged")


def _check_tables(folder: str, tables: dict[str, pd.DataFrame]) -> None:
    """Refuse tables that would mislead or crash the claims, naming the file and the first bad row:
    empty or duplicated run ids; activations that are not registry names or allowed formulas;
    depths, seeds, steps and layers that are not non-negative integers; σ² that are not finite; text where
    numbers belong (a value left empty, as for a diverged run, is allowed)."""
    from theory import activations as registry

    runs = tables["runs"]
    path = os.path.join(folder, "runs.csv")

    def bad(file: str, row, what: str) -> ResultsError:
        return ResultsError(f"{os.path.join(folder, file)} row {int(row) + 2}: {what}; the study folder is damaged "
                            "(rerun the study, or remove that folder from the results)")

    ids = runs["run_id"]
    for i, v in ids.items():
        if not isinstance(v, str) or not v.strip() or not v.isprintable() or "," in v:
            raise bad("runs.csv", i, f"run_id {_short(v)} is not a run id")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise bad("runs.csv", dup.index[0], f"run {dup.iloc[0]} appears twice")
    for a in runs["activation"].unique():
        try:
            if not isinstance(a, str):
                raise ValueError
            registry.lookup(a)
        except (ValueError, TypeError, RecursionError):
            i = runs.index[runs["activation"].isin([a])][0] if a == a else runs.index[runs["activation"].isna()][0]
            raise bad("runs.csv", i, f"activation {_short(a)} is neither a known name nor an allowed formula") from None
    for col, kind in (("depth", "positive integer"), ("seed", "integer"), ("sigma_w2", "number"),
                      ("sigma_b2", "number")):
        vals = pd.to_numeric(runs[col], errors="coerce")
        for i in vals.index[~vals.map(lambda v: _ok(v, kind))]:
            raise bad("runs.csv", i, f"{col} {_short(runs[col][i])} is not a finite {kind}")
    for i, v in runs["status"].items():
        if v not in _STATUSES:
            raise bad("runs.csv", i, f"status {_short(v)} is not one of {', '.join(_STATUSES)} (a cut or edited row?)")
    known = set(ids)
    for name, cols in (("layers", ("step", "layer")), ("epochs", ("epoch",)), ("steps", ("step",))):
        df = tables[name]
        if not len(df):
            continue
        for col in cols:
            vals = pd.to_numeric(df[col], errors="coerce")
            for i in vals.index[~vals.map(lambda v: _ok(v, "non-negative integer"))][:1]:
                raise bad(f"{name}.csv", i, f"{col} {_short(df[col][i])} is not a non-negative integer")
        numeric = [c for c in df.columns if c not in ("run_id", "activation", "init", "metric", *cols)]
        for col in numeric:
            if not pd.api.types.is_numeric_dtype(df[col]):
                vals = pd.to_numeric(df[col], errors="coerce")
                text = df[col].notna() & vals.isna()
                if text.any():
                    i = text.idxmax()
                    raise bad(f"{name}.csv", i, f"{col} {_short(df[col][i])} is not a number")
        stray = ~df["run_id"].isin(known)
        if stray.any():
            i = stray.idxmax()
            raise bad(f"{name}.csv", i, f"run {_short(df['run_id'][i])} is not in runs.csv")


def _ok(v, kind: str) -> bool:
    if v is None or not math.isfinite(v):
        return False
    if kind == "number":
        return True
    if v != int(v):
        return False
    return v > 0 if kind == "positive integer" else (v >= 0 if kind == "non-negative integer" else True)


def _short(v, n: int = 60) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= n else text[:n - 1] + "…"


def study_folders(root: Path) -> list[Path]:
    """Sub-folders of a results root that the report shows: those holding study.json, runs.csv or predictions.csv."""
    if not root.is_dir():
        return []
    marks = ("study.json", "runs.csv", "predictions.csv")
    return sorted(p for p in root.iterdir() if p.is_dir() and any((p / m).is_file() for m in marks))


def read_csv(path: Path) -> pd.DataFrame | None:
    """The table at ``path`` (or at ``path``.gz, a compressed study table), or None when missing or empty."""
    path = Path(plain_or_gz(str(path)))
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return pd.read_csv(path)


def prediction_files(root: Path, found: Iterable[Path]) -> list[Path]:
    """predictions.csv files: the results root's own (``python -m empirical.predict`` writes one for
    all studies) and any inside a study folder."""
    files = [root / "predictions.csv"] + [s / "predictions.csv" for s in found]
    return [f for f in files if f.is_file() and f.stat().st_size > 0]


def load_predictions(root: Path, found: Iterable[Path], damaged: dict | None = None) -> pd.DataFrame | None:
    """All prediction rows with a ``study`` column (a study folder's own file names its study).

    A file that cannot be read as predictions is left out and named in ``damaged`` (path -> reason)."""
    frames = []
    for f in prediction_files(root, found):
        try:
            df = pd.read_csv(f)
            if "verdict" not in df.columns or "claim" not in df.columns:
                raise ValueError("it lacks the verdict or claim column")
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            if damaged is None:
                raise ResultsError(f"{f} cannot be read as predictions ({' '.join(str(exc).split())})") from None
            damaged[str(f)] = " ".join(str(exc).split())[:300]
            continue
        if "study" not in df.columns:
            df.insert(0, "study", f.parent.name if f.parent != root else "(none)")
        df["study"] = df["study"].fillna("(none)").astype(str)
        frames.append(df)
    if not frames:
        return None
    pred = pd.concat(frames, ignore_index=True)
    if "kind" in pred.columns:
        pred["kind"] = pred["kind"].fillna("").astype(str)
    return pred


# ----------------------------------------------------------------------------------------------- settings

def widths(run) -> list[int]:
    """Hidden widths of a run (runs.csv ``widths`` "256-256-…"); [] when not an MLP list."""
    try:
        return [int(w) for w in str(run["widths"]).split("-") if w]
    except ValueError:
        return []


def setting_label(run) -> str:
    """The fixed setting string of a run (claims group seeds by it): init, σ_w² for gaussian, σ_b² for critical and gaussian, model or
    depth/width (or widths), train size; e.g. ``init=he depth=10 width=256``."""
    ws = widths(run)
    parts = [f"init={run['init']}"]
    if str(run["init"]) == "gaussian":
        parts.append(f"sigma_w2={float(run['sigma_w2']):g}")
    if str(run["init"]) in ("critical", "gaussian"):
        parts.append(f"sigma_b2={float(run['sigma_b2']):g}")
    if str(run.get("model", "mlp")) != "mlp":
        parts.insert(0, f"model={run['model']}")
    elif ws and len(set(ws)) == 1:
        parts.append(f"depth={len(ws)} width={ws[0]}")
    else:
        parts.append(f"widths={run['widths']}")
    ts = run.get("train_size")
    if ts is not None and not (isinstance(ts, float) and math.isnan(ts)) and str(ts) != "":
        parts.append(f"train_size={int(float(ts))}")
    return " ".join(parts)


def _with_setting(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    runs["_setting"] = [setting_label(r) for _, r in runs.iterrows()]
    return runs


def groups(study: Study) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(setting, activation, runs) per group of seeds, in file order."""
    for (setting, act), g in _with_setting(study.runs).groupby(["_setting", "activation"], sort=False):
        yield setting, str(act), g


def setting_groups(study: Study) -> Iterator[tuple[str, pd.DataFrame]]:
    """(setting, runs of every activation) per setting, in file order."""
    for setting, g in _with_setting(study.runs).groupby("_setting", sort=False):
        yield setting, g


def variant_labels(df: pd.DataFrame) -> pd.Series:
    """One label per row naming only what distinguishes runs of one activation in this table (or '').

    Unlike ``setting_label`` (a fixed string per run) this names just the columns that vary, for legends.
    """
    if "variant" in df.columns:
        return df["variant"].fillna("").astype(str)
    cols = [c for c in VARIANT_COLUMNS if c in df.columns and df[c].nunique(dropna=False) > 1]
    for c in reversed(list(cols)):      # drop a column the others determine (sigma_b2 set by init)
        rest = [k for k in cols if k != c] + (["activation"] if "activation" in df.columns else [])
        if rest and (df.groupby(rest, dropna=False)[c].nunique(dropna=False) <= 1).all():
            cols.remove(c)
    if not cols:
        return pd.Series([""] * len(df), index=df.index)
    return df[cols].astype(str).apply(lambda r: ", ".join(f"{c}={v}" for c, v in zip(cols, r)), axis=1)


def with_variants(df: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """``df`` (keyed by run_id) with the variant columns of runs.csv joined on."""
    if runs is None or "run_id" not in df.columns:
        return df
    cols = [c for c in VARIANT_COLUMNS if c in runs.columns and c not in df.columns]
    return df.merge(runs[["run_id", *cols]], on="run_id", how="left") if cols else df


def canonical_activation(label: str) -> str:
    """The built-in name behind a label (``Leaky-ReLU`` → leaky_relu, ``silu(beta=2)`` → silu, swish → silu)."""
    key = str(label).strip().lower().replace("-", "_").split("(")[0]
    return _ALIASES.get(key, key)


def activation_order(activations: Iterable[str]) -> list[str]:
    """Activations in registry order (built-ins first), then the rest alphabetically."""
    known = list(ACTIVATION_ORDER)

    def key(a):
        base = canonical_activation(a)
        return (known.index(base) if base in known else len(known), str(a))

    return sorted(dict.fromkeys(activations), key=key)


# ----------------------------------------------------------------------------------------------- probes

def metric(layers: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of layers.csv for one probe metric."""
    return layers[layers["metric"] == name]


def at_probe(layers: pd.DataFrame, name: str | None = None, which: str = "first") -> pd.DataFrame:
    """Rows at each run's first probe (``which="first"``, initialisation) or last probe (``"last"``).

    ``name`` filters one metric first, so "first" is the first step at which that metric was probed.
    """
    d = layers if name is None else metric(layers, name)
    if len(d) == 0:
        return d
    step = d.groupby("run_id")["step"].transform("min" if which == "first" else "max")
    return d[d["step"] == step]


def layer_values(probed: pd.DataFrame, run_id) -> pd.Series:
    """value by layer of one run in a frame from ``at_probe`` (sorted by layer)."""
    d = probed[probed["run_id"] == run_id]
    return d.set_index("layer")["value"].sort_index()


def hidden_only(d: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """Keep hidden layers 1..depth (drop layer 0 = input and depth+1 = output) where runs give depth."""
    if runs is None or "depth" not in runs.columns or not pd.api.types.is_numeric_dtype(d["layer"]):
        return d
    depth = d["run_id"].map(runs.set_index("run_id")["depth"])
    return d[(d["layer"] >= 1) & ((depth.isna()) | (d["layer"] <= depth))]
