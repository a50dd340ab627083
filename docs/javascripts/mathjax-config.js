// MathJax 3 configuration for pymdownx.arithmatex (generic: true).
// The MathJax file itself is vendored next to this one (javascripts/mathjax/tex-svg-full.js,
// npm package mathjax@3.2.2): SVG output embeds its glyphs, so no font files and no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true
  },
  svg: {
    fontCache: "global"
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

// Material for MkDocs re-renders pages without a reload when navigation.instant is on;
// typeset again on every page change (document$ is Material's page observable).
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}

// A link to a verdict row inside a collapsed block opens the block, then scrolls to the row.
function actlabOpenTarget() {
  const id = decodeURIComponent(location.hash.slice(1));
  const el = id && document.getElementById(id);
  if (!el) return;
  for (let p = el.parentElement; p; p = p.parentElement) {
    if (p.tagName === "DETAILS") p.open = true;
  }
  el.scrollIntoView();
}
window.addEventListener("hashchange", actlabOpenTarget);
window.addEventListener("load", actlabOpenTarget);
