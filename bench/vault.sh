#!/usr/bin/env bash
# Measures a keygate vault on loopback: secret reads with wrk beside nginx
# serving a response of the same size over the same kind of TLS (the
# ceiling of an HTTPS keep-alive server on this machine), then durable
# writes with bench/vaultload. Prints each figure and the keygate/nginx
# ratio. Usage: bench/vault.sh [-d 10s] [-c 32] [-secrets 1000]
# [-store postgres://...] [-peer nginx|none]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s conns=32 secrets=1000 store="" peer=nginx
while [ $# -gt 0 ]; do
	case $1 in
	-d) duration=$2; shift 2 ;;
	-c) conns=$2; shift 2 ;;
	-secrets) secrets=$2; shift 2 ;;
	-store) store=$2; shift 2 ;;
	-peer) peer=$2; shift 2 ;;
	*) echo "usage: $0 [-d DURATION] [-c CONNS] [-secrets N] [-store URL] [-peer nginx|none]" >&2; exit 2 ;;
	esac
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
need wrk wrk
need nginx nginx-light
need openssl openssl

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

kg_addr=127.0.0.1:$(free_port) ngx_addr=127.0.0.1:$(free_port)

# read_phase NAME URL PID... runs wrk against URL and prints its figures
# with the CPU the given processes spent per request.
read_phase() {
	local name=$1 url=$2; shift 2
	local c0 out reqs rps p99 c1
	c0=$(cpu_ticks "$@")
	out=$(KEYGATE_BENCH_TOKEN_FILE="$work/token" KEYGATE_BENCH_SECRETS=$secrets \
		wrk -t2 -c"$conns" -d"$duration" --latency -s bench/wrk/read.lua "$url")
	c1=$(cpu_ticks "$@")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
	printf '%-6s read  conns=%s requests=%s rps=%s p99=%s server_cpu_per_req=%.1fµs %s\n' \
		"$name" "$conns" "$reqs" "$rps" "$p99" "$(bc -l <<<"($c1-$c0)*10000/$reqs")" "$errs"
	echo "$rps" >"$work/$name.rps"
}

# keygate, seeded, with a real token written for wrk.
go build -o "$work/keygate" ./cmd/keygate
go build -o "$work/vaultload" ./bench/vaultload
KEYGATE_STORE=$store "$work/keygate" vault serve --data "$work/data" --listen "$kg_addr" --log-level warn &
kg=$!
pids+=("$kg")
for _ in $(seq 100); do [ -s "$work/data/admin.json" ] && break; sleep 0.1; done
sleep 0.5
export KEYGATE_BENCH_CA="$work/data/tls/ca.pem"
"$work/vaultload" -credentials "$work/data/admin.json" -secrets "$secrets" -token-file "$work/token"

read_phase keygate "https://$kg_addr" "$kg"

if [ "$peer" = nginx ]; then
# nginx with an ECDSA P-256 certificate (as keygate's), TLS 1.3, keep-alive,
# answering every path with a body the size of a secret bundle.
body=$(curl -sk -H "Authorization: Bearer $(cat "$work/token")" \
	"https://$kg_addr/secrets/bench-1/?api-version=7.5")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=127.0.0.1 -keyout "$work/nginx.key" -out "$work/nginx.crt" 2>/dev/null
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 10000000;
	server {
		listen $ngx_addr ssl;
		ssl_certificate $work/nginx.crt;
		ssl_certificate_key $work/nginx.key;
		ssl_protocols TLSv1.3;
		default_type application/json;
		location / { return 200 '${body//\'/\\\'}'; }
	}
}
CONF
nginx -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 0.5
workers=$(pgrep -P "${pids[-1]}" | tr '\n' ' ')

# shellcheck disable=SC2086
read_phase nginx "https://$ngx_addr" $workers
printf 'ratio  read  keygate/nginx rps=%.2f\n' "$(bc -l <<<"$(cat "$work/keygate.rps")/$(cat "$work/nginx.rps")")"
fi

# Durable writes: each acknowledged only once fsynced. nginx has no peer.
"$work/vaultload" -credentials "$work/data/admin.json" -pid "$kg" -c "$conns" -d "$duration" \
	-secrets "$secrets" -phases write
