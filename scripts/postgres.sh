#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for keygate's tests, installing Debian's
# package if the machine has none, and prints the connection URL.
#
#   url=$(scripts/postgres.sh start DIR)   # data, socket and log in DIR
#   scripts/postgres.sh stop DIR
#
# start on a DIR whose server was stopped starts it again, with its data,
# on the same port.
#
# The server listens on 127.0.0.1 only, on a free port, trusts local
# connections (it holds nothing but test data) and runs as the postgres
# system user, since PostgreSQL refuses to run as root.
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
	[ -n "$(bindir)" ] && [ -x "$(bindir)/initdb" ] && return
	echo "installing PostgreSQL (Debian's package)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq postgresql >&2
}

# as_pg runs a command as the postgres user when we are root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

start() {
	install
	local bin port
	bin=$(bindir)
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	chmod 0700 "$dir"
	if [ -f "$dir/port" ]; then
		port=$(cat "$dir/port")
	else
		as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		port=$(free_port)
		echo "$port" >"$dir/port"
	fi
	# fsync stays on: the tests check that acknowledged writes survive.
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" start >&2 ||
		{ cat "$dir/server.log" >&2; exit 1; }
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

stop() {
	local bin
	bin=$(bindir)
	[ -d "$dir/data" ] || return 0
	as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
}

case $cmd in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
