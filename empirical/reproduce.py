"""Retrain a shipped study from its study.json and say whether every number is bit-identical (wall times aside).

``python -m empirical.run --reproduce results/default`` trains the study's configuration into
``runs/reproduce/<name>/`` (a fresh folder each time) and compares runs.csv, epochs.csv, steps.csv and
layers.csv cell by cell as text, leaving out the wall-time columns. Columns or probe metrics that only one
side has (written by newer or older code) are named, not counted as differences.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace

import pandas as pd

from empirical import config as C
from empirical.results import TABLES, table_path

TIME_COLUMNS = ("time_per_epoch_s", "group_time_per_epoch_s", "act_time_per_epoch_s", "epoch_time_s",
                "solo_step_time_s", "solo_time_per_epoch_s")
REPRODUCE_DIR = os.path.join("runs", "reproduce")


def config_of(folder: str) -> C.StudyConfig:
    """The StudyConfig recorded in ``folder``/study.json, writing into ``runs/reproduce/``."""
    path = os.path.join(folder, "study.json")
    try:
        with open(path) as fh:
            recorded = json.load(fh)["config"]
    except FileNotFoundError:
        raise C.ConfigError(f"--reproduce: {path} does not exist; give a study folder such as results/default") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise C.ConfigError(f"--reproduce: {path} has no readable study configuration ({exc})") from None
    cfg = C.from_mapping({k: v for k, v in recorded.items() if k != "out_dir"}, source=path)
    return C.validate(replace(cfg, out_dir=REPRODUCE_DIR))


def fresh_folder(cfg: C.StudyConfig) -> None:
    """Remove an earlier reproduction of this study so that every run is trained again."""
    if os.path.isdir(cfg.folder):
        shutil.rmtree(cfg.folder)


@dataclass(frozen=True)
class Comparison:
    """Per table: cells compared and differing; what only one side has."""

    compared: dict
    differing: dict
    only_one_side: list

    @property
    def identical(self) -> bool:
        return not any(self.differing.values())

    def report(self, shipped: str, fresh: str) -> str:
        n = sum(self.compared.values())
        if self.identical:
            head = f"bit-identical: all {n} numbers of {shipped} (wall-time columns aside) were reproduced in {fresh}"
        else:
            parts = ", ".join(f"{t}: {d}" for t, d in self.differing.items() if d)
            head = f"NOT identical: {sum(self.differing.values())} of {n} cells differ ({parts}); compare {shipped} with {fresh}"
            envs = _environment(shipped), _environment(fresh)
            threads = tuple(e.get("torch_threads") for e in envs)
            if None not in threads and threads[0] != threads[1]:
                head += (f"\n  note: {shipped} ran with {threads[0]} torch thread(s), this run with {threads[1]}; "
                         "convolutions (TinyVGG) round differently with another thread count: set "
                         f"OMP_NUM_THREADS={threads[0]} to reproduce them")
            cpus = tuple(e.get("cpu_model") for e in envs)
            if cpus[0] != cpus[1]:
                head += (f"\n  note: {shipped} was made on {cpus[0] or 'an unrecorded CPU'}, this run on "
                         f"{cpus[1] or 'an unrecorded CPU'}; MKL and oneDNN pick their kernels by CPU, so float32 "
                         "numbers can differ in the last bits there, and grow with training")
        return head + "".join(f"\n  not compared: {x}" for x in self.only_one_side)


def _environment(folder: str) -> dict:
    """study.json's ``environment`` of a study folder ({} when it cannot be read)."""
    try:
        with open(os.path.join(folder, "study.json")) as fh:
            env = json.load(fh)["environment"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return env if isinstance(env, dict) else {}


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False) if os.path.isfile(path) else pd.DataFrame()


def compare(shipped: str, fresh: str) -> Comparison:
    """Compare the four tables of two study folders as text, cell by cell, in file order."""
    compared, differing, only = {}, {}, []
    for table in TABLES:
        a, b = _read(table_path(shipped, table)), _read(table_path(fresh, table))
        if table == "layers" and "metric" in a and "metric" in b:
            metrics = set(a["metric"]) & set(b["metric"])
            for side, df, name in (("shipped", a, shipped), ("new", b, fresh)):
                extra = sorted(set(df["metric"]) - metrics)
                if extra:
                    only.append(f"layers.csv metrics only in the {side} folder: {', '.join(extra)}")
            a, b = a[a["metric"].isin(metrics)], b[b["metric"].isin(metrics)]
        cols = [c for c in a.columns if c in b.columns and c not in TIME_COLUMNS]
        for side, df in (("shipped", a), ("new", b)):
            extra = [c for c in df.columns if c not in cols and c not in TIME_COLUMNS]
            if extra:
                only.append(f"{table}.csv columns only in the {side} folder: {', '.join(extra)}")
        if len(a) != len(b):
            compared[table], differing[table] = max(len(a), len(b)) * len(cols), abs(len(a) - len(b)) * len(cols)
            only.append(f"{table}.csv has {len(a)} rows shipped and {len(b)} new")
            continue
        x, y = a[cols].to_numpy(), b[cols].to_numpy()
        compared[table], differing[table] = x.size, int((x != y).sum())
    return Comparison(compared, differing, only)
