#!/usr/bin/env bash
# Measures rotation lag: from a new certificate version stored in a vault
# to the first new TLS handshake through the gateway that presents it,
# with push (the vault's event stream) and with polling every second (no
# event stream), over N rotations each. Everything runs in one process on
# loopback: a real vault, its identity agent, the gateway (reading the
# vault as a managed identity through azsecrets), and a client making
# handshakes one after another. Prints the median, p99 and maximum lag.
# Usage: bench/rotation.sh [-n 50]
set -euo pipefail
cd "$(dirname "$0")/.."

n=50
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift 2 ;;
	*) echo "usage: $0 [-n ROTATIONS]" >&2; exit 2 ;;
	esac
done

go test -run '^$' -bench 'BenchmarkRotationLag' -benchtime "${n}x" -count 1 ./internal/gateway/ |
	awk '/^BenchmarkRotationLag/ {
		mode = $1; sub(/^BenchmarkRotationLag\//, "", mode); sub(/-[0-9]+$/, "", mode)
		for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
		printf "%-8s %4d rotations   median %8.1f ms   p99 %8.1f ms   max %8.1f ms\n", mode, $2, v["median-ms"], v["p99-ms"], v["max-ms"]
	}'
