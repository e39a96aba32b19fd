# venv_install <dir> <package==version>: a Python virtual environment at
# <dir> (installing Debian's python3-venv first when it is missing and we
# are root) with the package pip-installed into it. Returns non-zero, and
# leaves nothing at <dir>, when either step fails. Sourced by
# scripts/deps/schemathesis.sh and scripts/deps/bench/redisim.sh.
venv_install() {
    local venv="$1" package="$2"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        # Debian splits venv (with its pip) out of python3.
        rm -rf "$venv"
        apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv" >/dev/null 2>&1
    fi
    if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip install -q \
        --disable-pip-version-check "$package"; then
        rm -rf "$venv"
        return 1
    fi
}
