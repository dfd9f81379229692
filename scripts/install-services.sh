#!/usr/bin/env bash
# Installs the Debian servers the integration tests start on 127.0.0.1
# (redis-server, prometheus with promtool, prometheus-pushgateway, postgresql) and the load generator the
# serving benchmark uses (wrk) when they are missing.
# The tests start and stop their own instances; nothing is left running.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)  # promtool: rule unit tests
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
command -v wrk >/dev/null || need+=(wrk)
# PostgreSQL server binaries (initdb, pg_ctl) for the prediction log's tests, under /usr/lib/postgresql/*/bin
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  echo "installing ${need[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the packaged services; the tests run their own on free ports.
  for svc in redis-server prometheus prometheus-pushgateway postgresql; do
    (command -v systemctl >/dev/null && $SUDO systemctl stop "$svc" 2>/dev/null) || true
    (command -v service >/dev/null && $SUDO service "$svc" stop >/dev/null 2>&1) || true
  done
fi
