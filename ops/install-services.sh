#!/usr/bin/env bash
# Install the RabbitMQ and PostgreSQL server binaries that the test suite runs privately,
# promtool for the alert-rule tests, nginx for the reverse-proxy tests and Chromium with
# its driver for the console's browser test
# (tests/servers/ starts its own throw-away instances; no system service is used).
#
# Idempotent: when the binaries are already there it changes nothing and makes no network
# call, so CI can run it unconditionally before `pytest`.
#
# Installing the packages may start the distribution's own services (a RabbitMQ node on
# 5672, a PostgreSQL cluster on 5432). That is harmless: the tests never use, stop or kill
# them, and run their own servers on other ports with their own epmd.
#
# Usage: sudo ops/install-services.sh        (Debian 12 / Ubuntu; needs root for apt)
set -euo pipefail

readonly TEST_OS_USER="lgsptest"   # PostgreSQL refuses to run as root; see tests/servers/

log() { printf 'install-services: %s\n' "$*" >&2; }

# The Debian location is checked first: the binaries are not on PATH there, and PATH may
# hold wrappers or symlinks (e.g. /usr/local/bin/initdb) whose target is gone.
have_rabbitmq() {
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && [ -x /usr/lib/rabbitmq/bin/rabbitmqctl ] \
        && return 0
    local server ctl
    server="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v rabbitmq-server || true)"
    ctl="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v rabbitmqctl || true)"
    [ -n "$server" ] && [ -x "$server" ] && [ -n "$ctl" ] && [ -x "$ctl" ]
}

have_postgres() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            return 0
        fi
    done
    local initdb pg_ctl
    initdb="$(command -v initdb || true)"
    pg_ctl="$(command -v pg_ctl || true)"
    # -x follows symlinks, so a dangling /usr/local/bin wrapper does not count.
    [ -n "$initdb" ] && [ -x "$initdb" ] && [ -n "$pg_ctl" ] && [ -x "$pg_ctl" ]
}

have_epmd() {
    command -v epmd >/dev/null 2>&1 || compgen -G '/usr/lib/erlang/erts-*/bin/epmd' >/dev/null
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        exit 1
    fi
}

# Retried because CI mirrors fail transiently; the lock timeout covers apt runs started
# by the image itself (unattended-upgrades) right after boot.
apt_get() {
    local attempt
    for attempt in 1 2 3; do
        if as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@"; then
            return 0
        fi
        log "apt-get $1 failed (attempt $attempt), retrying"
        sleep $((attempt * 5))
    done
    return 1
}

packages=()
if ! have_rabbitmq || ! have_epmd; then
    packages+=(rabbitmq-server)
fi
if ! have_postgres; then
    packages+=(postgresql)
fi
# promtool checks and unit-tests the shipped alert rules (ops/prometheus); prometheus
# itself scrapes a test bus for the dashboard test (ops/grafana, tests/prometheus_server.py).
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    packages+=(prometheus)
fi
# nginx runs ops/nginx/lgsp.conf privately in front of a test bus (mTLS, limits).
if ! PATH="$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1; then
    packages+=(nginx-light)
fi

# tests/outsider runs field producers written in Java (javac) and Node.js.
if ! command -v javac >/dev/null 2>&1; then
    packages+=(default-jdk-headless)
fi
if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs)
fi

# The console's browser test drives Debian's Chromium through its matching chromedriver
# (Selenium), offline: no browser is downloaded at test time.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    packages+=(chromium chromium-driver)
fi

if [ "${#packages[@]}" -eq 0 ]; then
    log "rabbitmq-server, postgresql, prometheus, nginx, javac, node and chromium already installed"
else
    log "installing: ${packages[*]}"
    apt_get update
    # No recommends: they only add daemons (e.g. sysstat) the tests do not need.
    apt_get install -y --no-install-recommends "${packages[@]}"
fi

if ! have_rabbitmq || ! have_epmd || ! have_postgres || ! command -v promtool >/dev/null \
        || ! command -v prometheus >/dev/null || ! PATH="$PATH:/usr/sbin" command -v nginx >/dev/null; then
    log "installation finished but the binaries are still missing"
    exit 1
fi

# Creating the account here too spares the first test run a useradd; tests/servers/
# still creates it on demand for machines where this script was not run as root.
if [ "$(id -u)" -eq 0 ] && ! id -u "$TEST_OS_USER" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$TEST_OS_USER"
    log "created system user $TEST_OS_USER"
fi

log "ok: PostgreSQL in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | xargs), RabbitMQ in $(
    ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-* 2>/dev/null | xargs)"
