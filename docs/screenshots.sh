#!/usr/bin/env bash
# Build the site, serve it locally and take a headless-Chromium screenshot of every page.
#
#   docs/screenshots.sh [OUT_DIR] [SITE_DIR]
#
# OUT_DIR  where the PNGs go (default /tmp/actlab-screenshots); one file per page, named after its URL.
# SITE_DIR an already built site to use instead of building one (default: build into a temp dir).
# Env: ACTLAB_RESULTS (results folder for the build), WIDTH/HEIGHT (window, default 1280x2000),
#      CHROMIUM (browser binary, default: chromium or chromium-browser on PATH), PORT (default: free port).
# Chromium gets 15 s of virtual time per page so MathJax has typeset before the capture, and every
# host name but 127.0.0.1 fails to resolve: what renders here renders offline. Per page it prints the
# number of formulas MathJax typeset as SVG and the number of TeX errors (error nodes, undefined
# macros, formulas left untypeset).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/actlab-screenshots}
SITE=${2:-}
WIDTH=${WIDTH:-1280}
HEIGHT=${HEIGHT:-2000}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
  echo "no chromium found: install it (Debian: apt-get install -y chromium) or set CHROMIUM" >&2
  exit 1
fi
mkdir -p "$OUT"
if [ -z "$SITE" ]; then
  SITE=$(mktemp -d)
  NO_MKDOCS_2_WARNING=1 mkdocs build --strict -q -d "$SITE"
fi
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >/dev/null 2>&1 &
SERVER=$!
PROFILE=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null; rm -rf "$PROFILE"' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break
  sleep 0.1
done
find "$SITE" -name index.html -not -path '*/assets/*' | sort | while read -r page; do
  rel=${page#"$SITE"/}
  url_path=${rel%index.html}
  name=${url_path%/}
  name=${name//\//_}
  png="$OUT/${name:-index}.png"
  flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
         --disable-background-networking --disable-component-update --disable-sync
         --user-data-dir="$PROFILE" --hide-scrollbars --virtual-time-budget=15000
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
  "$CHROMIUM" "${flags[@]}" --window-size="$WIDTH,$HEIGHT" --screenshot="$png" \
    "http://127.0.0.1:$PORT/$url_path" </dev/null >/dev/null 2>&1 || echo "failed: /$url_path" >&2
  dom=$("$CHROMIUM" "${flags[@]}" --dump-dom "http://127.0.0.1:$PORT/$url_path" </dev/null 2>/dev/null || true)
  svg=$(grep -o '<mjx-container[^>]*jax="SVG"' <<<"$dom" | wc -l || true)
  # TeX errors: merror nodes, undefined macros (red mtext), math left untypeset (raw \( or \[)
  err=$(grep -oE '<g data-mml-node="merror"|data-mml-node="mtext" fill="red"|class="arithmatex">\\[[(]' \
        <<<"$dom" | wc -l || true)
  echo "$png  <- /$url_path  (math: $svg SVG, $err errors)"
done
