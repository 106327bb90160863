# Shared by scripts/dev and scripts/test: make .venv and install conveyor with the given
# extras (and dependency group), reinstalling only when pyproject.toml changed.
#   source scripts/_env.sh EXTRAS [GROUP]     e.g. "server", or "all" "test"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
extras="$1"
group="${2:-}"
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv; then
        echo "could not create a virtual environment; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    fi
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${extras:-base}-${group:-nogroup}"
if [ ! -f "$stamp" ]; then
    # `--group` (PEP 735 dependency groups) needs pip >= 25.1; a distribution's venv may
    # start with an older one.
    .venv/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}" ${group:+--group "$group"}
    touch "$stamp"
fi
# The dashboard's third-party front-end files come from npm (a no-op once built).
src/conveyor/dashboard/frontend/build.sh
