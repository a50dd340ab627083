"""The seeds' table: one row per activation with accuracy ± CI, solo time, gradients, verdict counts; its
Markdown renders as a table (cells with '|' escaped)."""
from __future__ import annotations

import markdown
import pandas as pd

from empirical.analysis import seeds_table as T
from empirical.analysis.verdicts import Claim


def test_rows_and_markdown_table():
    runs = pd.DataFrame([dict(run_id=f"{a}{s}", activation=a, seed=s, init="default", model="mlp", widths="8",
                              train_size="", status="finished", final_test_acc=acc + 0.01 * s,
                              solo_time_per_epoch_s=0.5, first_layer_grad_init=1e-3, first_layer_grad_final=2e-3)
                         for a, acc in (("relu", 0.9), ("sigmoid", 0.5)) for s in (1, 2, 3)])
    setting = "init=default depth=1 width=8"
    claims = [Claim("s", "hypothesis", "c", "relu vs sigmoid", setting, "r", verdict="held"),
              Claim("s", "sanity", "d", "relu", setting, "r", verdict="held")]
    rows = T.summary_rows(runs, claims)
    relu = next(r for r in rows if r["activation"] == "relu")
    assert relu["acc"] == 0.92 and relu["acc_ci"] > 0 and relu["time_source"] == "alone"
    assert relu["verdicts"]["held"] == 1                      # the sanity check is left out
    html = markdown.markdown(T.format_markdown(rows), extensions=["tables"])
    assert html.count("<tr>") == 3 and "|∂L/∂W₁|" in html
    assert "relu" in T.format_text(rows)
