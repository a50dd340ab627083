"""The layout's rules: empirical.analysis never imports torch, no engine module imports empirical.analysis,
and every analysis module states its one job in the first line of its docstring."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANALYSIS = sorted((REPO / "empirical" / "analysis").rglob("*.py"))
# the two CLIs compose both halves: predict.py is the analysis CLI's alias, run.py trains and then prints
# the seeds' table with the study's verdicts; every other engine module only writes results
ENGINE = sorted(p for p in (REPO / "empirical").glob("*.py") if p.name not in ("predict.py", "run.py"))


def _module(p: Path) -> str:
    return ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def test_analysis_never_imports_torch():
    mods = [_module(p) for p in ANALYSIS]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_does_not_import_analysis():
    for p in ENGINE:
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            assert not any(n.startswith("empirical.analysis") for n in names), f"{p.name} imports {names}"


def test_every_analysis_module_states_its_job():
    for p in ANALYSIS:
        doc = ast.get_docstring(ast.parse(p.read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, p
