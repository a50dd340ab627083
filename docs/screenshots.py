"""Full-page screenshots of a served site with headless Chromium, driven over the DevTools pipe (stdlib only).

    python docs/screenshots.py BASE_URL OUT_DIR PAGE... [--width 1280 --width 390] [--chromium PATH]

For every page and width: wait until MathJax has typeset, then capture the whole page (not only the
window) as ``OUT_DIR/<width>/<page>.png`` and print one line of counts:

- ``math``: formulas MathJax typeset (SVG containers);
- ``tex_errors``: merror nodes, undefined macros (red text) and math left untypeset;
- ``zero_size``: typeset formulas drawn smaller than 2x2 px (collapsed by CSS);
- ``images``, ``broken_images``: images on the page (lazy ones are loaded before the shot) and those that
  did not load;
- ``overflow_px``: how far the widest table, figure or formula sticks out of the content column;
- ``height_px``: the page's height.

A JSON summary of all pages goes to ``OUT_DIR/summary.json``. Exit code 1 when any page has a TeX error,
a zero-size formula or an image that did not load.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PROBE = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });  // lazy images below the fold would be blank in a full-page shot
  await Promise.race([Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; }))),
                      new Promise(r => setTimeout(r, 15000))]);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  await new Promise(r => setTimeout(r, 300));
  const svgs = [...document.querySelectorAll('mjx-container[jax="SVG"]')];
  const zero = svgs.filter(c => { const b = (c.querySelector('svg') || c).getBoundingClientRect();
                                  return b.width < 2 || b.height < 2; }).length;
  const errs = document.querySelectorAll('[data-mml-node="merror"], [data-mml-node="mtext"][fill="red"]').length
    + [...document.querySelectorAll('.arithmatex')].filter(e => !e.querySelector('mjx-container')).length;
  const col = document.querySelector('.md-content__inner') || document.body;
  const right = col.getBoundingClientRect().right;
  let over = 0;
  for (const el of col.querySelectorAll('table, img, figure, mjx-container, pre')) {
    let p = el.parentElement, clipped = false;
    while (p && p !== col) { const s = getComputedStyle(p);
      if (s.overflowX === 'auto' || s.overflowX === 'scroll' || s.overflowX === 'hidden') { clipped = true; break; }
      p = p.parentElement; }
    if (!clipped) over = Math.max(over, el.getBoundingClientRect().right - right);
  }
  over = Math.max(over, document.documentElement.scrollWidth - window.innerWidth);
  return JSON.stringify({math: svgs.length, tex_errors: errs, zero_size: zero, overflow_px: Math.round(over),
                         images: imgs.length, broken_images: broken,
                         height_px: Math.ceil(document.documentElement.scrollHeight)});
})()
"""


class Browser:
    """Chromium with --remote-debugging-pipe: JSON messages, NUL-terminated, on fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str):
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="actlab-chromium-")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "about:blank"]

        def fds():  # in the child: the pipe ends become fds 3 and 4, inheritable across exec
            a, b = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10), fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.proc = subprocess.Popen([binary, *flags], close_fds=False, preexec_fn=fds,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.profile, "stderr.log"), "wb"))
        os.close(r_in)
        os.close(w_out)
        self.w = os.fdopen(w_in, "wb", buffering=0)
        self.r = os.fdopen(r_out, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = self.r.read(1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


def shoot(b: Browser, url: str, width: int, png: str, height_cap: int) -> dict:
    target = b.call("Target.createTarget", url="about:blank")["targetId"]
    s = b.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    b.call("Page.enable", session=s)
    b.call("Emulation.setDeviceMetricsOverride", session=s, width=width, height=900, deviceScaleFactor=1,
           mobile=width < 720)
    b.call("Page.navigate", session=s, url=url)
    deadline = time.time() + 30
    while time.time() < deadline:
        state = b.call("Runtime.evaluate", session=s, expression="document.readyState")["result"].get("value")
        if state == "complete":
            break
        time.sleep(0.1)
    res = b.call("Runtime.evaluate", session=s, expression=PROBE, awaitPromise=True, returnByValue=True)
    info = json.loads(res["result"]["value"])
    h = min(info["height_px"], height_cap)
    shot = b.call("Page.captureScreenshot", session=s, format="png", captureBeyondViewport=True,
                  clip={"x": 0, "y": 0, "width": width, "height": h, "scale": 1})
    with open(png, "wb") as fh:
        fh.write(base64.b64decode(shot["data"]))
    b.call("Target.closeTarget", targetId=target)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("pages", nargs="+", help="URL paths of pages, e.g. / or /activations/relu/")
    ap.add_argument("--width", type=int, action="append")
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--height-cap", type=int, default=60000, help="longest capture in px (default 60000)")
    a = ap.parse_args(argv)
    widths = a.width or [1280, 390]
    b = Browser(a.chromium)
    summary, bad = [], 0
    try:
        for w in widths:
            os.makedirs(os.path.join(a.out, str(w)), exist_ok=True)
            for page in (p.lstrip("/") for p in a.pages):
                name = page.strip("/").replace("/", "_") or "index"
                png = os.path.join(a.out, str(w), name + ".png")
                info = shoot(b, a.base.rstrip("/") + "/" + page, w, png, a.height_cap)
                info.update(page="/" + page, width=w, png=png)
                summary.append(info)
                bad += info["tex_errors"] > 0 or info["zero_size"] > 0 or info["broken_images"] > 0
                print(f"{w:>5} px  /{page:<40} math {info['math']:>4}  tex_errors {info['tex_errors']}  "
                      f"zero_size {info['zero_size']}  images {info['images']} (broken {info['broken_images']})  "
                      f"overflow_px {info['overflow_px']}  height_px {info['height_px']}",
                      flush=True)
    finally:
        b.close()
    with open(os.path.join(a.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
