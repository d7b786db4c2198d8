#!/usr/bin/env bash
# Starts a keygate vault on loopback and measures secret reads and durable
# writes against it with bench/vaultload. Usage: bench/vault.sh [vaultload flags]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/keygate" ./cmd/keygate
go build -o "$work/vaultload" ./bench/vaultload
"$work/keygate" vault serve --data "$work/data" --listen 127.0.0.1:18443 --log-level warn &
pid=$!
for _ in $(seq 100); do [ -s "$work/data/admin.json" ] && break; sleep 0.1; done
sleep 0.5
KEYGATE_BENCH_CA="$work/data/tls/ca.pem" "$work/vaultload" -credentials "$work/data/admin.json" -pid "$pid" "$@"
