# The browser test (im-http/tests/browser.rs) drives Debian's Chromium with
# playwright-core from npm. Playwright's own browser download does not work
# on closed networks, so the test uses the system Chromium and only the
# small playwright-core package, pinned in im-http/tests/browser/ and
# installed into its node_modules (not committed).
# Sourced by scripts/test, which defines need_apt.

need_apt chromium chromium
need_apt node nodejs
need_apt npm npm

if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "error: the browser test needs Node.js 20 or newer (playwright-core); this is $(node --version)" >&2
    exit 1
fi

browser_dir=im-http/tests/browser
if [ "$(cd "$browser_dir" && node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')" \
    != "$(cd "$browser_dir" && node -p 'require("./package.json").dependencies["playwright-core"]')" ]; then
    echo "scripts/test: installing playwright-core into $browser_dir/node_modules" >&2
    npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error >&2 || {
        echo "error: the browser test needs playwright-core; run 'npm ci --prefix $browser_dir' (it needs the npm registry) and run again" >&2
        exit 1
    }
fi
unset browser_dir
