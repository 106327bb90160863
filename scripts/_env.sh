# Shared by scripts/dev and scripts/test: make .venv and install conveyor with the given
# extras, reinstalling only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
extras="$1"
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        echo "could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    fi
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras:-base}"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    touch "$stamp"
fi
# The dashboard's third-party front-end files come from npm (a no-op once built).
src/conveyor/dashboard/frontend/build.sh
