#!/usr/bin/env bash
# Secret reads and durable writes against each store in one run: the
# embedded store, then PostgreSQL (a throwaway server from
# scripts/postgres.sh, on loopback), each behind a fresh vault, with the
# same load. Prints both sets of figures and postgres/bolt ratios.
# Usage: bench/stores.sh [-d 10s] [-c 32] [-secrets 1000]
set -euo pipefail
cd "$(dirname "$0")/.."

pgdir=$(mktemp -d /tmp/keygate-bench-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$pgdir" 2>/dev/null; rm -rf "$pgdir"' EXIT
url=$(scripts/postgres.sh start "$pgdir")

bolt=$(bench/vault.sh -peer none "$@" | tee /dev/stderr)
pg=$(bench/vault.sh -peer none -store "$url" "$@" | tee /dev/stderr)

rps() { awk -v phase="$2" '$0 ~ phase { for (i = 1; i <= NF; i++) if ($i ~ /^rps=/) { sub("rps=", "", $i); print $i } }' <<<"$1"; }
for phase in "keygate read" "^write"; do
	printf 'ratio  %-5s postgres/bolt rps=%.2f\n' "${phase##*[ ^]}" \
		"$(bc -l <<<"$(rps "$pg" "$phase")/$(rps "$bolt" "$phase")")"
done
