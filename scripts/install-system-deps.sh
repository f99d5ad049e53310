#!/usr/bin/env bash
# Installs the Debian packages netpilot's tests and demo use (real exporters, SNMP agent,
# tshark, prometheus ...). Idempotent: installs only what is missing. Needs root (or sudo).
# Components add their packages to PACKAGES below, one per line, with why. With arguments,
# installs only those packages (`make image` needs mmdebstrap alone).
set -euo pipefail

PACKAGES=(
  default-jre-headless   # Kafka broker (Java 17+); usually present
  maven                  # resolves Kafka from Maven Central
  snmpd                  # linkstats tests: a real SNMP agent serving veth counters
  snmp                   # linkstats: snmpset/snmpget to prepare and cross-check the agent
  iperf3                 # linkstats tests: real traffic between network namespaces
  iproute2               # linkstats tests: network namespaces and veth pairs
  ethtool                # linkstats tests: offloads off on veths (MTU-sized frames)
  softflowd              # collector tests: real NetFlow v5/v9/IPFIX exporter
  pmacct                 # collector tests: pmacctd nfprobe (v5/v9/IPFIX) and sfprobe (sFlow v5)
  fprobe                 # collector tests: real NetFlow v5 exporter
  nfdump                 # collector tests: nfcapd + nfreplay re-export
  tshark                 # collector tests: ground-truth decode of exporter datagrams
  tcpdump                # collector tests: captures a veth into a FIFO that softflowd reads
  prometheus             # sink tests: a real Prometheus scrapes the exporter; PromQL checks values
  bird2                  # injector: BIRD routers the demo and tests inject overrides into (birdc reads back)
  frr                    # injector tests: FRR bgpd+zebra in a namespace (vtysh reads back, kernel FIB)
  mmdebstrap             # make image: the image's Debian root filesystem (deploy/image/build.py)
)
if [ $# -gt 0 ]; then PACKAGES=("$@"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# java/mvn may come from elsewhere (e.g. a JDK tarball): do not reinstall them then.
if command -v java >/dev/null 2>&1; then missing=("${missing[@]/default-jre-headless}"); fi
if command -v mvn >/dev/null 2>&1; then missing=("${missing[@]/maven}"); fi
read -r -a missing <<< "${missing[*]}"
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
