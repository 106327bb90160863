#!/usr/bin/env bash
# Build the dashboard's third-party front-end files: `npm ci` from the committed lock file,
# then copy the few dist files the pages load into ../static/vendor/ (ignored by git,
# shipped as package data). Runs again only when the lock file changed or a file is missing.
#
#   build.sh            for a developer's tree: without npm, warn and go on (no live updates
#                       or charts in the dashboard)
#   build.sh --require  for a package build (setup.py's hook): without npm, or if any file
#                       is missing afterwards, fail, so no wheel ships without them
set -euo pipefail
cd "$(dirname "$0")"
require=false
[ "${1:-}" = "--require" ] && require=true
vendor=../static/vendor
files=(
    "node_modules/htmx.org/dist/htmx.min.js:htmx.min.js"
    "node_modules/htmx.org/LICENSE:htmx.LICENSE"
    "node_modules/htmx-ext-sse/dist/sse.min.js:htmx-sse.min.js"
    "node_modules/uplot/dist/uPlot.iife.min.js:uPlot.iife.min.js"
    "node_modules/uplot/dist/uPlot.min.css:uPlot.min.css"
    "node_modules/uplot/LICENSE:uPlot.LICENSE"
)
# The stamp names the lock it was built from; it ships with the files (sdist and wheel), so
# a wheel built from an sdist needs no npm.
lock_sha="$(sha1sum package-lock.json | cut -c1-40)"
stamp="$vendor/built-from-lock.txt"
complete() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sha" ] || return 1
    for pair in "${files[@]}"; do [ -s "$vendor/${pair##*:}" ] || return 1; done
}
if complete; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    if $require; then
        echo "error: npm is needed to build the dashboard's front-end files" \
             "(Debian: apt-get install npm); refusing to build a package without them" >&2
        exit 1
    fi
    echo "npm is missing: the dashboard will have no live updates or charts" \
         "(Debian: apt-get install npm), then run $0" >&2
    exit 0
fi
npm ci --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null
rm -rf "$vendor" && mkdir -p "$vendor"
for pair in "${files[@]}"; do
    cp "${pair%%:*}" "$vendor/${pair##*:}"
done
echo "$lock_sha" > "$stamp"
complete || { echo "error: the front-end build left files missing in $vendor" >&2; exit 1; }
