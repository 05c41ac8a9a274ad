#!/usr/bin/env bash
# Installs the headless browser that the `pixelwise serve` browser test drives (tests/serve):
# Debian/Ubuntu's `chromium` and `chromium-driver` packages, about 150 MB. Does nothing when
# both are already on PATH; uses sudo when not run as root. Without apt-get it says what to
# install and exits 0 (the browser test then skips itself, saying why).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install chromium and chromedriver yourself" \
         "(the pixelwise serve browser test is skipped without them)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-browser: apt-get install chromium chromium-driver (for the serve browser test)" >&2
if ! $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
