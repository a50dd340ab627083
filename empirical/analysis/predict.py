"""The predictions CLI: ``python -m empirical.predict RESULTS [RESULTS ...]`` checks every claim against results.

Each RESULTS is a study folder (with runs.csv) or a results root whose sub-folders are studies.
Writes ``predictions.csv`` (columns ``empirical.analysis.verdicts.FIELDS``) to ``--out FILE``, by default
into the parent of the first study folder, i.e. the results root (``results/predictions.csv``):
the hypotheses compare studies, so one file covers all of them, and each row names its study.
Prints the verdict table, the reason for every verdict other than held, the relation each claim tests,
and the verdict counts per kind (sanity checks apart).
Bad input (a folder that is not a study): one line on stderr, exit code 2; an internal error: its
traceback, a request for a bug report, exit code 1.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from typing import Sequence

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
BUG_REPORT = ("internal error: this is a bug in actlab, not in your results; please report it with the "
              "traceback above and the command you ran")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m empirical.predict",
                description="Compare mean-field theory, activation properties and the seeds' hypotheses with "
                            "measured results; writes predictions.csv and prints held / failed / inconclusive / "
                            "not applicable per claim with counts per kind.")
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="a study folder (with runs.csv) or a results root containing study folders")
    p.add_argument("--out", metavar="FILE",
                   help="where to write the CSV (default: predictions.csv in the parent of the first study folder)")
    p.add_argument("--quiet", action="store_true", help="print only the counts, not the table")
    return p


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.3g}" if 1e-3 <= a < 1e4 else f"{v:.2e}"


def format_counts(df) -> str:
    """Verdict counts per kind, sanity checks on a line of their own."""
    from empirical.analysis.verdicts import KINDS, VERDICTS, counts

    c = counts(df.to_dict("records"))
    lines = []
    for kind in KINDS:
        n = sum(c[kind].values())
        if n and kind != "sanity":
            lines.append(f"{kind:<11s} " + ", ".join(f"{c[kind][v]} {v}" for v in VERDICTS) + f"  ({n} claims)")
    if sum(c["sanity"].values()):
        lines.append("sanity checks (theorems the code must satisfy; not evidence about theory): "
                     + ", ".join(f"{c['sanity'][v]} {v}" for v in VERDICTS))
    return "\n".join(lines)


def format_table(df) -> str:
    """The verdict table: one line per claim (sanity checks last); the reason of every verdict other than
    held listed below; counts per kind at the end."""
    head = ["study", "kind", "claim", "activation", "setting", "predicted", "measured [95 % CI]", "tol", "n",
            "p (Holm)", "verdict"]
    order = {k: i for i, k in enumerate(("prediction", "bound", "ordering", "hypothesis", "sanity"))}
    df = df.assign(_o=df["kind"].map(order).fillna(9)).sort_values(["study", "_o"], kind="stable")
    lines = []
    for _, r in df.iterrows():
        meas = _fmt(r["measured"])
        if not (math.isnan(r["lo"]) or math.isnan(r["hi"])):
            meas += f" [{_fmt(r['lo'])}, {_fmt(r['hi'])}]"
        p = "—" if math.isnan(r["p_adjusted"]) else _fmt(r["p_adjusted"])
        lines.append([r["study"], r["kind"], r["claim"], r["activation"], r["setting"], _fmt(r["predicted"]), meas,
                      _fmt(r["tolerance"]), str(int(r["n"])) if r["n"] else "—", p, r["verdict"]])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines]
    notes = [f"[{r['verdict']}] {r['study']} {r['claim']} {r['activation']} ({r['setting']}): {r['reason']}"
             for _, r in df.iterrows() if r["verdict"] != "held"]
    if notes:
        out += ["", "why (failed / inconclusive / not applicable):"] + ["  " + n for n in notes]
    relations = dict(zip(df["claim"], df["relation"]))
    out += ["", "relations tested:"] + [f"  {c}: {rel}" for c, rel in relations.items()]
    out += ["", format_counts(df)]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from empirical.analysis.claims import predict
    from empirical.analysis.results_schema import ResultsError, find_studies, load_study
    from empirical.analysis.verdicts import to_frame
    from empirical.results import ResultsError as WriteError
    from empirical.results import atomic_write, check_target

    try:
        folders = find_studies(args.results)
        studies = [load_study(f) for f in folders]
        out = args.out or os.path.join(os.path.dirname(os.path.abspath(folders[0])), "predictions.csv")
        out_dir = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(out_dir):
            raise ResultsError(f"cannot write {out}: folder {out_dir} does not exist")
        check_target(out)  # a device, FIFO, symlink or folder at --out is refused before any work
        df = to_frame(predict(studies))
        try:
            atomic_write(out, df.to_csv(index=False))
        except OSError as exc:
            raise ResultsError(f"cannot write {out} ({exc.strerror})") from None
    except (ResultsError, WriteError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - anything else is a bug: show it whole
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_INTERNAL
    if args.quiet:
        print(format_counts(df))
    else:
        print(format_table(df))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
