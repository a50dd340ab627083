"""The report site: `mkdocs build --strict` on a tiny study the engine really trained, then its pages.

One cold build (empty figure cache) serves most tests; a second build with the same cache and a
missing results folder checks that the cache is used and that missing results are said plainly.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

pytest.importorskip("mkdocs")
pytest.importorskip("material")


def _build(site: Path, results: Path, cache: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "ACTLAB_RESULTS": str(results), "ACTLAB_DOCS_CACHE": str(cache),
           "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)  # a hang guard, not a speed test
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def built(tmp_path_factory, real_results):
    root = tmp_path_factory.mktemp("docs")
    site, cache = root / "site", root / "cache"
    proc, seconds = _build(site, real_results, cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"site": site, "cache": cache, "root": root, "log": proc.stdout + proc.stderr, "seconds": seconds,
            "results": real_results}


def _page(site: Path, url: str) -> str:
    return (site / url / "index.html").read_text(encoding="utf-8")


def _names():
    """The built-in activations: formulas other tests register in this process are not in the site."""
    from theory.activations import get, names
    return [n for n in names() if not get(n).user]


class _Refs(HTMLParser):
    """Every URL that makes a browser fetch something: scripts, styles, fonts, images, frames."""

    def __init__(self):
        super().__init__()
        self.fetched: list[tuple[str, str]] = []
        self.inline_css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.fetched.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "preconnect", "icon", "modulepreload",
                                      "dns-prefetch", "manifest")):
                self.fetched.append((f"link[{rel}]", a["href"]))
        if tag == "style":
            self._in_style = True
        if a.get("style"):
            self.inline_css.append(a["style"])

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.inline_css.append(data)


EXTERNAL = re.compile(r"^(https?:)?//", re.I)
CSS_EXTERNAL = re.compile(r"(@import\s+(url\()?\s*['\"]?|url\(\s*['\"]?)(https?:)?//", re.I)


def test_build_is_strict(built):
    assert "WARNING" not in built["log"]


def test_every_page_exists(built):
    site = built["site"]
    urls = ["", "activations", "meanfield", "experiments", "experiments/tiny", "predictions",
            "reproduce", "ray"] + [f"activations/{n}" for n in _names()]
    missing = [u for u in urls if not (site / u / "index.html").is_file()]
    assert not missing


def test_nav_links_every_activation_and_study(built):
    html = _page(built["site"], "")
    for n in _names():
        assert f'href="activations/{n}/"' in html, n
    assert 'href="experiments/tiny/"' in html


def test_math_markup_and_local_mathjax(built):
    site = built["site"]
    mj = site / "javascripts" / "mathjax" / "tex-svg-full.js"
    assert mj.is_file() and mj.stat().st_size > 1_000_000
    relu = _page(site, "activations/relu")
    assert 'class="arithmatex"' in relu
    assert r"\begin{cases}" in relu            # the Piecewise definition, rendered by sympy.latex
    assert re.search(r'<script src="(\.\./)+javascripts/mathjax/tex-svg-full\.js"', relu)
    assert '<script src="javascripts/mathjax-config.js"' in _page(site, "")
    assert 'class="arithmatex"' in _page(site, "meanfield")


def test_no_external_scripts_styles_or_fonts(built):
    site = built["site"]
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 20
    bad = []
    for page in pages:
        parser = _Refs()
        parser.feed(page.read_text(encoding="utf-8"))
        bad += [(str(page.relative_to(site)), tag, url) for tag, url in parser.fetched if EXTERNAL.match(url)]
        bad += [(str(page.relative_to(site)), "css", css) for css in parser.inline_css if CSS_EXTERNAL.search(css)]
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        bad += [(str(css.relative_to(site)), "css", m.group(0)) for m in CSS_EXTERNAL.finditer(text)]
    assert not bad, bad[:5]
    assert "fonts.googleapis" not in _page(site, "")


def test_activation_pages_carry_derived_numbers(built):
    """Values on the pages are the theory's, computed at build time (not typed)."""
    from theory import meanfield
    from theory.activations import get

    site = built["site"]
    sigmoid = _page(site, "activations/sigmoid")
    assert r"\frac{1}{4}" in sigmoid                       # Lipschitz constant sup|σ′| = 1/4, exact
    relu = _page(site, "activations/relu")
    assert "(−∞, 0)" in relu                              # dead region
    assert 'src="../figures/relu.png"' in relu
    assert (site / "activations" / "figures" / "relu.png").stat().st_size > 5_000
    assert (site / "activations" / "figures" / "relu.svg").is_file()
    tanh_crit = meanfield.critical_sigma_w2(get("tanh"), 0.05)
    assert math.isfinite(tanh_crit)
    assert f"{tanh_crit:.4g}" in _page(site, "meanfield")
    index = _page(site, "activations")
    for n in _names():
        assert f'href="{n}/"' in index


def test_meanfield_figures(built):
    site = built["site"]
    html = _page(site, "meanfield")
    for stem in ("meanfield-sb2-0", "meanfield-sb2-0p05", "correlation-sb2-0p05"):
        assert f'src="../figures/{stem}.png"' in html
        assert (site / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert (site / "figures" / f"{stem}.svg").is_file()


def test_results_pages_from_real_study(built):
    import pandas as pd

    from empirical.analysis.figures import FIGURES
    from empirical.analysis.report_pages import VERDICT_ORDER, fmt

    site, results = built["site"], built["results"]
    study = _page(site, "experiments/tiny")
    for stem in set(FIGURES) - {"predicted_vs_measured", "sharpness", "plateaus"}:   # the first: predictions page
        assert f'src="../figures/tiny/{stem}.png"' in study, stem
        assert (site / "experiments" / "figures" / "tiny" / f"{stem}.png").is_file()
    runs = pd.read_csv(results / "tiny" / "runs.csv")
    relu = runs[runs.activation == "relu"]["final_test_acc"]
    assert f"{fmt(float(relu.mean()), 3)} ± {fmt(float(relu.std()), 2)}" in study
    preds = _page(site, "predictions")
    pred = pd.read_csv(results / "predictions.csv")
    cells = re.sub(r"\|+", "|", re.sub(r"\s*<[^>]+>\s*", "|", preds))
    for kind, d in pred[(pred.study == "tiny") & (pred.kind != "sanity")].groupby("kind"):
        c = d["verdict"].value_counts()
        assert f"|tiny|{kind}|" + "|".join(str(int(c.get(v, 0))) for v in VERDICT_ORDER) + "|" in cells, kind
    assert 'id="study-none"' in preds and "sigmoid_flat_low_sample" in preds   # a cross-study row
    for verdict in ("held", "failed", "inconclusive"):
        assert (f'class="actlab-verdict-{verdict}"' in preds) == (verdict in set(pred["verdict"])), verdict
    assert re.search(r'src="\.\./figures/predictions/tiny\.png"', preds)
    assert (site / "figures" / "predictions" / "tiny.svg").is_file()
    assert 'href="../../predictions/#study-tiny"' in study


def test_missing_results_build_passes_and_says_so(built):
    site = built["root"] / "site-missing"
    missing = built["root"] / "no-such-results"
    proc, seconds = _build(site, missing, built["cache"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "computed theory" not in proc.stdout + proc.stderr   # theory figures came from the cache
    assert seconds < built["seconds"]
    for url in ("experiments", "predictions"):
        html = _page(site, url)
        assert "does not exist" in html and str(missing) in html
    assert not (site / "experiments" / "tiny").exists()


def test_a_damaged_study_does_not_break_the_report(built, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(built["results"], results)
    bad = results / "broken"
    bad.mkdir()
    (bad / "runs.csv").write_text("run_id,activation,seed\nabc,relu,1,9,9\n\x00\x01garbage,,\n")
    (bad / "study.json").write_text("[1, 2")
    site = tmp_path / "site"
    proc, _ = _build(site, results, built["cache"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = _page(site, "experiments/broken")
    assert "damaged and left out of the report" in page
    assert "tiny" in _page(site, "experiments/tiny")
    assert "Left out: damaged results" in _page(site, "experiments")


def _chromium():
    import shutil
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium(), reason="no chromium on PATH (apt-get install -y chromium, or set CHROMIUM): "
                                            "the screenshot check needs a browser")
def test_screenshots_every_formula_typeset_at_both_widths(built, tmp_path):
    """docs/screenshots.sh on the built site: full-page shots at 1280 and 390 px of the math-heavy pages;
    no TeX error, no formula collapsed to under 2x2 px, every image loaded (lazy ones included), nothing sticking
    out of the content column."""
    import json

    pages = "/ /meanfield/ /activations/gelu/ /convergence/"
    pages = " ".join(p for p in pages.split() if (built["site"] / p.strip("/") / "index.html").exists())
    env = {**os.environ, "PYTHON": sys.executable, "PAGES": pages, "CHROMIUM": _chromium()}
    proc = subprocess.run(["bash", "docs/screenshots.sh", str(tmp_path), str(built["site"])], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {s["width"] for s in summary} == {1280, 390} and len(summary) == 2 * len(pages.split())
    for s in summary:
        assert s["math"] > 0 and s["tex_errors"] == 0 and s["zero_size"] == 0, s
        assert s["broken_images"] == 0, s
        assert s["overflow_px"] <= 1, s
        assert Path(s["png"]).stat().st_size > 10_000


def test_overview_findings_link_to_existing_figures_and_verdict_rows(built):
    """Every finding on the overview names a figure (its anchor exists on the study page, next to the image)
    and a verdict row (its id exists on the predictions page); the fixture's predictions give at least 3."""
    site = built["site"]
    index = _page(site, "")
    part = index.split('id="what-we-found"')[1].split('id="how-this-report-works"')[0]
    items = re.findall(r"<li>(.*?)</li>", part, flags=re.S)
    assert len(items) >= 3, part[:2000]
    preds = _page(site, "predictions")
    for it in items:
        assert re.search(r"\d", re.sub(r"<[^>]+>", "", it)), it          # a number
        assert "interval" in it, it                                          # with its interval
        fig = re.search(r'href="experiments/([^/"#]+)/#(fig-[a-z-]+)"', it)
        ver = re.search(r'href="predictions/#(v-[a-z0-9-]+)"', it)
        assert fig and ver, it
        page = _page(site, f"experiments/{fig.group(1)}")
        assert f'id="{fig.group(2)}"' in page, fig.group(0)
        after = page.split(f'id="{fig.group(2)}"', 1)[1][:3000]
        img = re.search(r'src="([^"]+\.png)"', after)
        assert img and (site / "experiments" / fig.group(1) / img.group(1)).resolve().is_file(), fig.group(0)
        assert f'id="{ver.group(1)}"' in preds, ver.group(1)


class _Text(HTMLParser):
    """Visible text outside code, pre, script, style and MathJax source (arithmatex spans)."""

    SKIP = {"code", "pre", "script", "style"}

    def __init__(self):
        super().__init__()
        self.depth, self.stack, self.text = 0, [], []

    VOID = {"img", "br", "hr", "meta", "link", "input", "source", "col", "area", "base", "wbr", "embed", "track"}

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        skip = tag in self.SKIP or "arithmatex" in (dict(attrs).get("class") or "")
        self.stack.append((tag, skip))
        self.depth += skip

    def handle_endtag(self, tag):
        if not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            t, skip = self.stack.pop()
            self.depth -= skip
            if t == tag:
                break

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


def test_no_literal_subscript_underscores_outside_math(built):
    """σ_w², q_l, z_l written as text would show their underscore: every such subscript must be math."""
    bad = re.compile(r"(?<![A-Za-z0-9_])[A-Za-zα-ωΑ-Ω]_(?:[A-Za-z0-9]{1,3}|\{)(?![A-Za-z0-9_])")
    offenders = []
    for html in built["site"].rglob("index.html"):
        if "assets" in html.parts or "search" in html.parts:
            continue
        p = _Text()
        p.feed(html.read_text(encoding="utf-8"))
        for m in bad.finditer(" ".join(p.text)):
            offenders.append(f"{html.relative_to(built['site'])}: {m.group(0)}")
    assert not offenders, offenders[:20]


FIRST_SERVE = """
import json, sys
from mkdocs.config import load_config
from mkdocs.structure.files import get_files
cfg = load_config("mkdocs.yml")
cfg.plugins.on_startup(command=sys.argv[1], dirty=False)
cfg = cfg.plugins.on_config(cfg)
files = cfg.plugins.on_files(get_files(cfg), config=cfg)
hook = next(p for name, p in cfg.plugins.items() if "actlab" in name)
study = next(f for f in files if f.src_uri == "experiments/tiny.md")
print(json.dumps({"predictions": hook._STATE["snippets"]["predictions"], "study": study.content_string,
                  "findings": hook._STATE["snippets"].get("findings", ""),
                  "levels": [cfg.validation.links.not_found, cfg.validation.links.anchors]}))
"""


@pytest.mark.parametrize("command", ["serve", "build"])
def test_first_serve_on_a_fresh_cache_defers_the_slow_pages(tmp_path, real_results, command):
    """``mkdocs serve`` on a fresh cache serves its first build at once: the study pages and the predictions
    tables say "being computed" (the drawing in the background then rebuilds them); ``mkdocs build`` never
    defers. Only the file events run here, so nothing is drawn."""
    import json

    from empirical.analysis.report_pages import PENDING_NOTE

    env = {**os.environ, "ACTLAB_RESULTS": str(real_results), "ACTLAB_DOCS_CACHE": str(tmp_path / "cache"),
           "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", FIRST_SERVE, command], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    deferred = command == "serve"
    assert (PENDING_NOTE in got["predictions"]) == deferred
    assert got["levels"] == ([20, 20] if deferred else [30, 30])     # links into deferred pages: info, not warnings
    assert (PENDING_NOTE in got["study"]) == deferred
    if not deferred:
        assert "| held" in got["predictions"] or "held" in got["predictions"]
        assert "tiny" in got["study"] and len(got["study"]) > 10 * len(PENDING_NOTE)


SERVE_REBUILDS = r"""
import json, shutil, sys
from pathlib import Path
from mkdocs.commands.build import build
from mkdocs.config import load_config
docs, out = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree("docs", docs)

def rebuild(site):
    cfg = load_config("mkdocs.yml", docs_dir=str(docs), site_dir=str(out / site))
    if site == "a":
        cfg.plugins.on_startup(command="serve", dirty=False)
    build(cfg)
    from docs_hooks import render_memo
    hook = next(p for name, p in cfg.plugins.items() if "actlab" in name)
    return {**render_memo.STATS, **{"plan_" + k: v for k, v in hook.PLANS.items()}}

stats = [rebuild("a"), rebuild("b")]
page = docs / "meanfield.md"
page.write_text(page.read_text() + "\n\nA sentence added while serving: zanzibar.\n")
stats.append(rebuild("c"))
print(json.dumps(stats))
"""


def test_serve_rebuild_reuses_unchanged_pages_and_matches_a_fresh_render(built, tmp_path):
    """Under ``mkdocs serve`` a rebuild re-renders and re-indexes only the pages whose Markdown changed; the
    reused pages and search index are byte-identical to those of the rendering before them. A new process
    takes the generated pages from the cache on disk, and builds the same pages as the build that wrote it."""
    import json

    env = {**os.environ, "ACTLAB_RESULTS": str(built["results"]), "ACTLAB_DOCS_CACHE": str(built["cache"]),
           "ACTLAB_SERVE_BACKGROUND": "0", "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", SERVE_REBUILDS, str(tmp_path / "docs"), str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b, c = json.loads(proc.stdout.strip().splitlines()[-1])
    pages = a["rendered"]
    assert pages > 20 and a["reused"] == 0
    assert b["rendered"] == pages and b["reused"] == pages            # nothing re-rendered
    assert b["indexed"] == a["indexed"] and b["index_reused"] == pages
    assert c["rendered"] == pages + 1 and c["reused"] == 2 * pages - 1  # only the edited page
    assert c["indexed"] == a["indexed"] + 1
    first = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.html"))
    assert first == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.html"))
    for rel in first + [Path("search/search_index.json")]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert "zanzibar" in (tmp_path / "c" / "meanfield" / "index.html").read_text(encoding="utf-8")
    assert "zanzibar" in (tmp_path / "c" / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "zanzibar" not in (tmp_path / "b" / "meanfield" / "index.html").read_text(encoding="utf-8")
    # build "a" ran in a new process: its generated pages came from the fixture build's cache on disk
    assert (a["plan_disk"], a["plan_computed"]) == (1, 0)
    assert (c["plan_disk"], c["plan_computed"]) == (3, 0)            # and in every rebuild: never recomputed
    for page in ("index.html", "predictions/index.html", "experiments/tiny/index.html", "activations/relu/index.html"):
        assert (tmp_path / "a" / page).read_bytes() == (built["site"] / page).read_bytes(), page
