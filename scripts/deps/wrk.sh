# wrk, the HTTP load generator of the benchmarks (and their smoke test).
# Sourced by scripts/test and scripts/bench.
if ! command -v need_apt >/dev/null 2>&1; then
    need_apt() {
        command -v "$1" >/dev/null 2>&1 && return 0
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
        fi
        command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed; install the '$2' package and run again" >&2; exit 1; }
    }
fi
need_apt wrk wrk
