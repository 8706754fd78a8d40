#!/usr/bin/env bash
# promtool, which checks and unit-tests deploy/prometheus/alerts.yml, from Debian's prometheus
# package: installed only when missing, and its Prometheus service never started.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "promtool is missing: install Debian's prometheus package (apt-get install prometheus)" >&2
  exit 1
fi
# Forbid service starts for the install's length, unless a policy is already in place.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends prometheus >/dev/null
}
install || { apt-get -o DPkg::Lock::Timeout=600 update -qq && install; }
command -v promtool >/dev/null
