#!/usr/bin/env bash
# Make sure a headless-capable Chromium is at /usr/bin/chromium, installing Debian's
# `chromium` package if it is not. Idempotent. The browser tests (tests/browser/) drive it
# with Playwright for Python (executable_path=/usr/bin/chromium; no `playwright install`).
#
# Prints the browser's path on stdout (and nothing else), so it can be used as:
#   CHROMIUM="$(scripts/ensure-chromium.sh)"
set -euo pipefail

log() { printf 'ensure-chromium: %s\n' "$*" >&2; }

BIN=/usr/bin/chromium

if [ -x "$BIN" ]; then
    printf '%s\n' "$BIN"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "$BIN not found."
    log "Install it as root:  apt-get update && apt-get install -y chromium"
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "$BIN not found and apt-get is unavailable; install Chromium manually at $BIN."
    exit 1
fi

log "$BIN not found; installing Debian package 'chromium' (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null; then
    log "apt-get update failed"
    exit 1
fi
if ! apt-get install -y -qq chromium >/dev/null; then
    log "apt-get install chromium failed"
    exit 1
fi

if [ ! -x "$BIN" ]; then
    log "installed 'chromium' but $BIN is still missing; giving up"
    exit 1
fi
log "installed $("$BIN" --version 2>/dev/null || echo chromium)"
printf '%s\n' "$BIN"
