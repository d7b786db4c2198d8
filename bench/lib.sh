# Helpers the benchmark scripts share; sourced, not run.

# need CMD PACKAGE installs Debian's PACKAGE when CMD is missing.
need() {
	command -v "$1" >/dev/null && return
	[ -n "${apt_updated:-}" ] || { apt-get update -qq; apt_updated=1; }
	apt-get install -y -qq "$2" >/dev/null
}

# cpu_ticks PID... prints the user+system ticks of the processes.
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }

# free_port prints a loopback port that nothing listens on, so that
# benchmarks started at once do not collide. A port is taken at random
# from the high range and kept when a connection to it is refused.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free loopback port found" >&2
	return 1
}
