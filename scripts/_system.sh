# Shared by scripts/test and .ci/run: the programs the whole suite needs besides Python
# packages. As root with apt-get they are installed (apt-get update first); otherwise the
# script stops at once with one line per missing program and the command that installs it.
#   source scripts/_system.sh
#   CONVEYOR_NO_INSTALL=1 only explains (never installs), even as root.
need=()      # Debian packages to install
missing=()   # "program: why" lines
want() {  # want PROGRAM PACKAGES WHY
    if ! command -v "$1" >/dev/null; then
        need+=($2)
        missing+=("$1 (package $2): $3")
    fi
}
want python3 "python3 python3-venv" "conveyor and its tests are Python"
want redis-server redis-server "the Redis backend's tests start their own redis-server"
want chromium chromium "the dashboard's browser tests drive Debian's chromium"
want npm "nodejs npm" "the dashboard's front-end files are built from npm"
want promtool prometheus "promtool checks /metrics and the alert rules"
want openssl openssl "the webhook TLS test makes a certificate"
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip' 2>/dev/null; then
    need+=(python3-venv)
    missing+=("python3 -m venv (package python3-venv): the suite runs in .venv")
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${CONVEYOR_NO_INSTALL:-}" ]; then
        echo "installing what the suite needs: ${need[*]}" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
    else
        for line in "${missing[@]}"; do
            echo "missing: $line" >&2
        done
        echo "install them with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi
unset -f want
