#!/bin/sh
# The browser of the playground's page tests: Debian's chromium at /usr/bin/chromium (Playwright drives it through
# executable_path; 'playwright install', which downloads its own browser, is not needed). Idempotent and quiet:
# nothing happens when it is there; as root it is installed with apt-get; otherwise this says what to run
# (the page tests skip themselves without it).
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; then
        exit 0
    fi
    echo "install-test-browser: 'apt-get install chromium' failed; the playground's page tests will be skipped" >&2
    exit 0
fi
echo "install-test-browser: $CHROMIUM is missing; install it with: sudo apt-get install chromium" >&2
echo "install-test-browser: (until then the playground's page tests are skipped)" >&2
exit 0
