"""The report site: `mkdocs build --strict` with a tiny synthetic results folder, then its pages.

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
FIXTURE = REPO / "tests" / "fixtures" / "results"
sys.path.insert(0, str(REPO))

pytest.importorskip("mkdocs")
pytest.importorskip("material")


def _build(site: Path, results: Path, cache: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "ACTLAB_RESULTS": str(results), "ACTLAB_DOCS_CACHE": str(cache),
           "NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    site, cache = root / "site", root / "cache"
    proc, seconds = _build(site, FIXTURE, cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"site": site, "cache": cache, "root": root, "log": proc.stdout + proc.stderr, "seconds": seconds}


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


def test_build_is_strict_and_fast(built):
    assert built["seconds"] < 120, f"cold build took {built['seconds']:.0f} s"
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


def test_results_pages_from_fixture(built):
    site = built["site"]
    study = _page(site, "experiments/tiny")
    for stem in ("training_curves", "step_loss", "final_accuracy", "time_per_epoch", "first_layer_grad",
                 "layer_heatmap", "depth_profile", "samples"):  # predicted_vs_measured: on the predictions page
        assert f'src="../figures/tiny/{stem}.png"' in study, stem
        assert (site / "experiments" / "figures" / "tiny" / f"{stem}.png").is_file()
    assert "0.898" in study                    # relu's mean final test accuracy in the fixture
    preds = _page(site, "predictions")
    # tiny: 4 rows of its own predictions.csv + 1 row of the root's predictions.csv (study column):
    # counts per kind, sanity checks in a row of their own
    cells = re.sub(r"\|+", "|", re.sub(r"\s*<[^>]+>\s*", "|", preds))
    assert "|prediction|1|1|0|0|" in cells and "|hypothesis|0|0|1|0|" in cells
    assert "|sanity (apart)|1|0|0|1|" in cells
    assert 'class="actlab-verdict-inconclusive"' in preds
    assert 'id="study-none"' in preds and "sigmoid_flat_low_sample" in preds   # a cross-study row
    assert 'class="actlab-verdict-failed"' in preds
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
