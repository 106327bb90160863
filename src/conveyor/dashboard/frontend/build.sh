#!/usr/bin/env bash
# Build the dashboard's third-party front-end files: `npm ci` from the committed lock file,
# then copy the few dist files the pages load into ../static/vendor/ (ignored by git,
# shipped as package data). Runs again only when the lock file changed or a file is missing.
set -euo pipefail
cd "$(dirname "$0")"
vendor=../static/vendor
files=(
    "node_modules/htmx.org/dist/htmx.min.js:htmx.min.js"
    "node_modules/htmx.org/LICENSE:htmx.LICENSE"
    "node_modules/htmx-ext-sse/dist/sse.min.js:htmx-sse.min.js"
    "node_modules/uplot/dist/uPlot.iife.min.js:uPlot.iife.min.js"
    "node_modules/uplot/dist/uPlot.min.css:uPlot.min.css"
    "node_modules/uplot/LICENSE:uPlot.LICENSE"
)
stamp="$vendor/.built-$(sha1sum package-lock.json | cut -c1-12)"
if [ -f "$stamp" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "npm is missing: the dashboard will have no live updates or charts" \
         "(Debian: apt-get install npm), then run $0" >&2
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$vendor" && mkdir -p "$vendor"
for pair in "${files[@]}"; do
    cp "${pair%%:*}" "$vendor/${pair##*:}"
done
touch "$stamp"
