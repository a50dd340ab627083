#!/usr/bin/env bash
# Build the site, serve it locally and take full-page headless-Chromium screenshots of every page at
# 1280 px and 390 px (a phone), counting TeX errors, zero-size formulas and overflow per page.
#
#   docs/screenshots.sh [OUT_DIR] [SITE_DIR]
#
# OUT_DIR  where the PNGs go (default /tmp/actlab-screenshots): OUT_DIR/<width>/<page>.png, summary.json.
# SITE_DIR an already built site to use instead of building one (default: build into a temp dir).
# Env: ACTLAB_RESULTS (results folder for the build), WIDTHS (default "1280 390"),
#      CHROMIUM (browser binary, default: chromium or chromium-browser on PATH), PORT (default: free port),
#      PAGES (URL paths to shoot, default: every page of the site).
# Every host name but 127.0.0.1 fails to resolve: what renders here renders offline. The work is done by
# docs/screenshots.py (DevTools over a pipe, stdlib only); exit code 1 if any page has a TeX error or a
# formula drawn smaller than 2x2 px.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/actlab-screenshots}
SITE=${2:-}
WIDTHS=${WIDTHS:-1280 390}
PY=${PYTHON:-python3}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
  echo "no chromium found: install it (Debian: apt-get install -y chromium) or set CHROMIUM" >&2
  exit 2
fi
mkdir -p "$OUT"
if [ -z "$SITE" ]; then
  SITE=$(mktemp -d)
  NO_MKDOCS_2_WARNING=1 mkdocs build --strict -q -d "$SITE"
fi
PORT=${PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
"$PY" -m http.server "$PORT" --bind 127.0.0.1 --directory "$SITE" >/dev/null 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null' EXIT
for _ in $(seq 50); do
  "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break
  sleep 0.1
done
if [ -z "${PAGES:-}" ]; then
  PAGES=$(cd "$SITE" && find . -name index.html -not -path './assets/*' -not -path './search/*' | sort \
          | sed -e 's|^\.||' -e 's|index\.html$||')
fi
args=()
for w in $WIDTHS; do args+=(--width "$w"); done
# shellcheck disable=SC2086
"$PY" docs/screenshots.py "http://127.0.0.1:$PORT" "$OUT" "${args[@]}" --chromium "$CHROMIUM" -- $PAGES
