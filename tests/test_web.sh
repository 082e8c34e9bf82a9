#!/bin/sh
# test_web.sh — `make check` runs relm-web's browser test (tests/web_browser.py):
# headless Chromium driven by Selenium against two relmd, a mailbox and two
# relm-web.  Debian's python3 is used on purpose: python3-selenium is a
# Debian package, and a python3 earlier in PATH (a pyenv, a venv) lacks it.
set -u
B=${BUILD:-build}
for p in relm-mailbox relmd relm-web; do
	[ -x "$B/$p" ] || { echo "test_web: $B/$p not found (run make first)" >&2; exit 1; }
done
for t in /usr/bin/python3 /usr/bin/chromium /usr/bin/chromedriver /usr/bin/zbarimg; do
	[ -x "$t" ] || { echo "test_web: $t missing (make check installs it)" >&2; exit 1; }
done
BUILD=$B exec /usr/bin/python3 "$(dirname "$0")/web_browser.py"
