# redisim 0.0.5 (PyPI), the seed system this engine grew from: scripts/bench
# runs its Lua scripts (driven from Python by im-bench/peer/redisim_peer.py)
# on the same redis-server, beside the engine's Redis sends. Sourced by
# scripts/bench only (not scripts/test: it sits below scripts/deps/).
#
# Installs it once into a virtual environment under the target directory
# and exports that environment's python as IM_BENCH_REDISIM_PYTHON. When it
# cannot be installed (no network, no python3), says so and exports
# nothing: im-bench then prints the redisim rows as unavailable.
REDISIM_VERSION="0.0.5"
if [ -z "${IM_BENCH_REDISIM_PYTHON:-}" ] && [ "${IM_SKIP_REDIS:-}" != "1" ]; then
    ri_venv="${CARGO_TARGET_DIR:-target}/tools/redisim-$REDISIM_VERSION"
    if [ ! -x "$ri_venv/bin/python" ] || ! "$ri_venv/bin/python" -c "import redisim" 2>/dev/null; then
        echo "scripts/bench: installing redisim $REDISIM_VERSION into $ri_venv" >&2
        source scripts/lib/venv.sh
        if ! venv_install "$ri_venv" "redisim==$REDISIM_VERSION"; then
            echo "warning: could not install redisim $REDISIM_VERSION from PyPI: the redisim" \
                 "rows are printed as unavailable" >&2
        fi
    fi
    if [ -x "$ri_venv/bin/python" ]; then
        IM_BENCH_REDISIM_PYTHON="$(cd "$ri_venv/bin" && pwd)/python"
        export IM_BENCH_REDISIM_PYTHON
    fi
fi
