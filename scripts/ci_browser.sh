#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for the report's browser test
# (tests/report/test_browser.py), plus the DejaVu fonts the report's plots name.
#
# Idempotent; meant for a fresh Debian 12 machine, run as root (CI). Nothing is downloaded
# outside Debian's packages: selenium is given /usr/bin/chromedriver, so Selenium Manager never
# fetches a driver or a browser of its own.
set -euo pipefail

log() { echo "ci_browser: $*" >&2; }

have() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
        && [[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]
}

if have; then
    log "chromium and chromium-driver already installed"
else
    if [[ $(id -u) -ne 0 ]]; then
        log "must run as root to install chromium (or install chromium and chromium-driver yourself)"
        exit 1
    fi
    log "installing chromium, chromium-driver and fonts-dejavu-core from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi
chromium --version >&2
chromedriver --version >&2
