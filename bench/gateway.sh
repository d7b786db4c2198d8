#!/usr/bin/env bash
# Measures keygate's gateway beside nginx, both terminating TLS on
# loopback in front of the same backend (a one-worker nginx answering a
# fixed body), with the same ECDSA P-256 certificate. Prints each figure
# and the gateway/nginx ratio for:
#   keep-alive HTTPS/1.1 requests per second and p99 latency (wrk),
#   HTTP/2 requests per second (h2load),
#   new TLS 1.3 connections per second, each a full handshake carrying one
#   request (h2load reconnecting after Connection: close). h2load resumes
#   sessions when it reconnects, so both servers issue none
#   (ssl_session_tickets off; tlsSessionResumption: Disabled), and the
#   script counts resumed handshakes on both at the end: they must be 0.
# Beside each figure: the server's CPU time per request (for nginx, its
# workers'), the load tool's, and the machine's idle share. The load tool,
# the backend and the server share the cores, so a rate is bounded by all
# three; the cpu ratios (gateway/nginx, lower is better) compare the two
# servers alone.
# Usage: bench/gateway.sh [-d 10s] [-c 64] [-rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s conns=64 rounds=3
while [ $# -gt 0 ]; do
	case $1 in
	-d) duration=$2; shift 2 ;;
	-c) conns=$2; shift 2 ;;
	-rounds) rounds=$2; shift 2 ;;
	*) echo "usage: $0 [-d DURATION] [-c CONNS] [-rounds N]" >&2; exit 2 ;;
	esac
done
secs=${duration%s}

# shellcheck source=bench/lib.sh
. bench/lib.sh
need wrk wrk
need nginx nginx-light
need h2load nghttp2-client
need openssl openssl

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

backend=127.0.0.1:$(free_port) gw=127.0.0.1:$(free_port) ngx=127.0.0.1:$(free_port) admin=127.0.0.1:$(free_port)

# machine_ticks prints the machine's idle and total ticks.
machine_ticks() { awk '/^cpu / {print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# measure CMD... runs the load tool CMD, its output in $out, and sets
# tool_s (the tool's CPU seconds, user + system) and idle (the machine's
# idle percentage meanwhile): on two shared cores the tool competes with
# the servers, and these say how much.
measure() {
	local TIMEFORMAT='%U %S' i0 t0 i1 t1 u sy
	read -r i0 t0 < <(machine_ticks)
	{ time out=$("$@" 2>&1); } 2>"$work/time"
	read -r i1 t1 < <(machine_ticks)
	read -r u sy <"$work/time"
	tool_s=$(bc -l <<<"$u+$sy")
	idle=$(((i1 - i0) * 100 / (t1 - t0)))
}

# One certificate for both proxies: ECDSA P-256, as PEM for nginx and as
# PFX for the gateway's inline sslCertificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=bench.example.test -addext subjectAltName=DNS:bench.example.test \
	-keyout "$work/site.key" -out "$work/site.crt" 2>/dev/null
openssl pkcs12 -export -inkey "$work/site.key" -in "$work/site.crt" -passout pass: -out "$work/site.pfx"

# The backend: nginx with one worker, keep-alive, a fixed 13-byte body.
mkdir -p "$work/backend" "$work/proxy"
cat >"$work/backend/nginx.conf" <<CONF
worker_processes 1;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 10000000;
	server {
		listen $backend reuseport backlog=4096;
		location / { default_type text/plain; return 200 "hello, bench\n"; }
	}
}
CONF
nginx -c "$work/backend/nginx.conf" -g 'daemon off;' &
pids+=($!)

# nginx as the peer proxy: two workers (one per core), TLS 1.2 and 1.3,
# HTTP/2, kept-alive upstream connections. Its access log records only
# whether a handshake resumed a session, in the connection phase.
cat >"$work/proxy/nginx.conf" <<CONF
worker_processes 2;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log;
events { worker_connections 8192; }
http {
	log_format reuse '\$ssl_session_reused';
	access_log off;
	keepalive_requests 10000000;
	upstream app { server $backend; keepalive 256; }
	server {
		listen $ngx ssl http2 backlog=4096;
		ssl_certificate $work/site.crt;
		ssl_certificate_key $work/site.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_tickets off;
		ssl_session_cache off;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto https;
		}
		location /conn { access_log $work/proxy/reuse.log reuse; proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
CONF
nginx -c "$work/proxy/nginx.conf" -g 'daemon off;' &
ngx_master=$!
pids+=($ngx_master)

# The gateway, the same shape: inline certificate, one pool, access log off
# as nginx's is (its metrics stay on).
cat >"$work/gateway.yaml" <<CONF
name: bench
admin: {address: "$admin"}
accessLog: {path: "off"}
tlsSessionResumption: Disabled
frontendIPConfigurations: [{name: lo, privateIPAddress: 127.0.0.1}]
frontendPorts: [{name: https, port: ${gw#*:}}]
sslCertificates: [{name: site, data: "$(base64 -w0 "$work/site.pfx")", password: ""}]
httpListeners: [{name: site, frontendPort: https, protocol: Https, sslCertificate: site}]
backendAddressPools: [{name: app, backendAddresses: [{ipAddress: ${backend%:*}}]}]
backendHttpSettingsCollection: [{name: app, port: ${backend#*:}, protocol: Http}]
requestRoutingRules: [{name: site, ruleType: Basic, httpListener: site, backendAddressPool: app, backendHttpSettings: app}]
CONF
go build -o "$work/keygate" ./cmd/keygate
"$work/keygate" gateway run --config "$work/gateway.yaml" --log-level warn &
kg=$!
pids+=($kg)

for _ in $(seq 100); do
	curl -sfk --resolve "bench.example.test:${gw#*:}:127.0.0.1" "https://bench.example.test:${gw#*:}/" >/dev/null &&
		curl -sfk --resolve "bench.example.test:${ngx#*:}:127.0.0.1" "https://bench.example.test:${ngx#*:}/" >/dev/null && break
	sleep 0.1
done
ngx_workers=$(pgrep -P "$ngx_master" | tr '\n' ' ')

url() { echo "https://bench.example.test:${1#*:}$2"; }

# keepalive NAME ADDR PID... : wrk over kept-alive HTTP/1.1 connections.
keepalive() {
	local name=$1 addr=$2; shift 2
	local c0 c1 rps p99 reqs cpu
	c0=$(cpu_ticks "$@")
	measure wrk -t2 -c"$conns" -d"$duration" --latency -H "Host: bench.example.test" "https://$addr/"
	c1=$(cpu_ticks "$@")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	cpu=$(bc -l <<<"($c1-$c0)*10000/$reqs")
	printf '%-7s keepalive  conns=%s rps=%s p99=%s cpu/req=%.1fµs wrk=%.1fµs idle=%s%% %s\n' "$name" "$conns" \
		"$rps" "$p99" "$cpu" "$(bc -l <<<"$tool_s*1000000/$reqs")" "$idle" \
		"$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr '\n' ' ')"
	echo "$rps" >"$work/$name.ka.rps"
	echo "$cpu" >"$work/$name.ka.cpu"
	to_ms "$p99" >"$work/$name.ka.p99"
}

# to_ms converts wrk's latency (850.00us, 1.20ms, 1.01s) to milliseconds.
to_ms() {
	awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$1"
}

# h2 NAME ADDR PID... : h2load over HTTP/2, 10 streams per connection.
h2() {
	local name=$1 addr=$2; shift 2
	local c0 c1 rps reqs cpu
	c0=$(cpu_ticks "$@")
	measure h2load -t2 -c32 -m10 -D "$secs" --connect-to="$addr" "$(url "$addr" /)"
	c1=$(cpu_ticks "$@")
	rps=$(awk '/^finished in/ {print $4}' <<<"$out")
	reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
	cpu=$(bc -l <<<"($c1-$c0)*10000/($reqs+1)")
	printf '%-7s http2      conns=32x10 rps=%s cpu/req=%.1fµs h2load=%.1fµs idle=%s%% %s\n' "$name" "$rps" \
		"$cpu" "$(bc -l <<<"$tool_s*1000000/($reqs+1)")" "$idle" "$(grep -E '^requests:' <<<"$out")"
	echo "$rps" >"$work/$name.h2.rps"
	echo "$cpu" >"$work/$name.h2.cpu"
}

# newconns NAME ADDR PID... : every request on a new TLS 1.3 connection:
# h2load over HTTP/1.1 asks the server to close after each answer and
# reconnects. (h2load's timed mode stalls on reconnects, so it runs a
# count of requests sized to last about the duration.)
newconns() {
	local name=$1 addr=$2; shift 2
	local c0 c1 rps reqs cpu
	c0=$(cpu_ticks "$@")
	measure h2load --h1 -t2 -c32 -n $((secs * 2500)) --tls13-ciphers=TLS_AES_128_GCM_SHA256 \
		--connect-to="$addr" -H "Connection: close" "$(url "$addr" /conn)"
	c1=$(cpu_ticks "$@")
	rps=$(awk '/^finished in/ {print $4}' <<<"$out")
	reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
	cpu=$(bc -l <<<"($c1-$c0)*10000/($reqs+1)")
	printf '%-7s newconn    conns=32 handshakes/s=%s cpu/handshake=%.1fµs h2load=%.1fµs idle=%s%% %s %s\n' \
		"$name" "$rps" "$cpu" "$(bc -l <<<"$tool_s*1000000/($reqs+1)")" "$idle" \
		"$(grep -E '^requests:' <<<"$out")" "$(grep -E '^TLS Protocol' <<<"$out")"
	echo "$rps" >"$work/$name.nc.rps"
	echo "$cpu" >"$work/$name.nc.cpu"
}

ratio() { bc -l <<<"$(cat "$work/$1")/$(cat "$work/$2")"; }

for round in $(seq "$rounds"); do
	echo "--- round $round"
	# shellcheck disable=SC2086
	{
		keepalive gateway "$gw" $kg
		keepalive nginx "$ngx" $ngx_workers
		h2 gateway "$gw" $kg
		h2 nginx "$ngx" $ngx_workers
		newconns gateway "$gw" $kg
		newconns nginx "$ngx" $ngx_workers
	}
	printf 'ratio   round=%s keepalive_rps=%.2f p99=%.2f http2_rps=%.2f newconn_rate=%.2f keepalive_cpu=%.2f http2_cpu=%.2f newconn_cpu=%.2f\n' \
		"$round" "$(ratio gateway.ka.rps nginx.ka.rps)" "$(ratio gateway.ka.p99 nginx.ka.p99)" \
		"$(ratio gateway.h2.rps nginx.h2.rps)" "$(ratio gateway.nc.rps nginx.nc.rps)" \
		"$(ratio gateway.ka.cpu nginx.ka.cpu)" "$(ratio gateway.h2.cpu nginx.h2.cpu)" \
		"$(ratio gateway.nc.cpu nginx.nc.cpu)" | tee -a "$work/ratios"
done

# Every connection-phase handshake must have been a full one.
resumed_gw=$(curl -s "http://$admin/metrics" | awk '/^keygate_gateway_tls_handshakes_total/ && /result="resumed"/ {s+=$2} END {print s+0}')
full_gw=$(curl -s "http://$admin/metrics" | awk '/^keygate_gateway_tls_handshakes_total/ && /result="success"/ {s+=$2} END {print s+0}')
resumed_ngx=$(grep -c '^r$' "$work/proxy/reuse.log" || true)
full_ngx=$(grep -c '^\.$' "$work/proxy/reuse.log" || true)
echo "handshakes: gateway full=$full_gw resumed=$resumed_gw; nginx (connection phase) full=$full_ngx resumed=$resumed_ngx"

if [ "$rounds" -gt 1 ]; then
	echo "--- spread over $rounds rounds (min / median / max)"
	for f in keepalive_rps p99 http2_rps newconn_rate keepalive_cpu http2_cpu newconn_cpu; do
		sed -n "s/.* $f=\([0-9.]*\).*/\1/p" "$work/ratios" | sort -n |
			awk -v f="$f" '{v[NR]=$1} END {printf "ratio %-14s %.2f / %.2f / %.2f\n", f, v[1], v[int((NR+1)/2)], v[NR]}'
	done
fi
