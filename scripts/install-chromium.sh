#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium when it is missing. The HTML report test
# (tests/evaluation/test_report_html_chromium.py) opens runs/<id>/report/index.html in it,
# checks the console for errors and takes a screenshot. The test calls this script on
# first use; it is safe to run again (a no-op then). Fonts: Debian's chromium pulls
# fonts-liberation, which is enough for the report's text.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
echo "installing chromium (Debian package)"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
chromium --version
