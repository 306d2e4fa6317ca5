#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, postgres, pg_ctl) are available,
# installing Debian's `postgresql` package if they are not. Idempotent.
#
# Prints the directory holding the binaries on stdout (and nothing else), so it
# can be used as:   PG_BIN="$(scripts/ensure-postgres.sh)"
#
# Used by tests/harness/postgres.py to start throwaway servers for tests and CI.
set -euo pipefail

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }

find_bin_dir() {
    local d best=""
    # Newest Debian version directory wins (sort -V: 9 < 10 < 15).
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            best="$d"
        fi
    done
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
        best="$(dirname "$(readlink -f "$(command -v initdb)")")"
        [ -x "$best/postgres" ] || best=""
    fi
    printf '%s' "$best"
}

bin_dir="$(find_bin_dir)"
if [ -n "$bin_dir" ]; then
    printf '%s\n' "$bin_dir"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin or on PATH."
    log "Install them as root:  apt-get install -y --no-install-recommends postgresql"
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "PostgreSQL server binaries not found and apt-get is unavailable; install PostgreSQL manually."
    exit 1
fi

log "PostgreSQL server binaries not found; installing Debian package 'postgresql' (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null; then
    log "apt-get update failed"
    exit 1
fi
# Debian's postinst may also create (and try to start) a system cluster `main` on
# port 5432; harmless, the harness never uses it (own data dir, port and socket).
if ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    log "apt-get install postgresql failed"
    exit 1
fi

bin_dir="$(find_bin_dir)"
if [ -z "$bin_dir" ]; then
    log "installed 'postgresql' but still cannot find initdb; giving up"
    exit 1
fi
log "installed PostgreSQL; binaries in $bin_dir"
printf '%s\n' "$bin_dir"
