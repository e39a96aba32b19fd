# schemathesis (PyPI), the API fuzzer im-http/tests/schemathesis.rs runs
# against the live server and its OpenAPI document. Sourced by scripts/test.
#
# Uses $SCHEMATHESIS when set, else installs a pinned version into a
# virtual environment under the target directory (once), and exports its
# path as SCHEMATHESIS for the test. IM_SKIP_SCHEMATHESIS=1 skips the test,
# so nothing is installed for it then.
SCHEMATHESIS_VERSION="4.32.5"
if [ -z "${SCHEMATHESIS:-}" ] && [ "${IM_SKIP_SCHEMATHESIS:-}" != "1" ]; then
    st_venv="${CARGO_TARGET_DIR:-target}/tools/schemathesis-$SCHEMATHESIS_VERSION"
    if [ ! -x "$st_venv/bin/schemathesis" ]; then
        need_apt python3 python3
        echo "scripts/test: installing schemathesis $SCHEMATHESIS_VERSION into $st_venv" >&2
        source scripts/lib/venv.sh
        if ! venv_install "$st_venv" "schemathesis==$SCHEMATHESIS_VERSION"; then
            echo "error: could not install schemathesis; install it" \
                 "(pip install schemathesis==$SCHEMATHESIS_VERSION), set SCHEMATHESIS to its" \
                 "executable and run again" >&2
            exit 1
        fi
    fi
    SCHEMATHESIS="$(cd "$st_venv/bin" && pwd)/schemathesis"
    export SCHEMATHESIS
fi
