# Shared pieces of the record-*.sh scripts, which run a real Debian service, make a real
# client fail to log in to it, and keep the logs the service wrote as fixtures for
# tests/tests/real_services.rs. Sourced, not run. Needs root.
#
# Everything happens in a network namespace of its own (`$NS`), where the server listens on
# 198.51.100.1 and clients connect from the addresses the script names, all on its loopback
# device; services that log through syslog(3) reach a private rsyslogd (see
# private-dev.sh) that writes Debian's files: auth.log (auth,authpriv), mail.log (mail) and
# syslog (the rest). Nothing of the machine's own services or logs is used or touched.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURES=$HERE/../tests/fixtures/services
SERVER=198.51.100.1
WORK=$(mktemp -d /tmp/banxdp-record.XXXXXX)
chmod 0755 "$WORK" # services drop root and must reach their files
NS=bxrec$$
PIDS=()

cleanup() {
	local i
	# The daemons first, the syslog daemon (the first started) last.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[i]}" 2>/dev/null || true
		sleep 0.5
	done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# Creates the namespace with the server's address and each of "$@" (clients) on lo.
make_netns() {
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" addr add "$SERVER/32" dev lo
	local a
	for a in "$@"; do ip -n "$NS" addr add "$a/32" dev lo; done
}

# Starts rsyslogd in a mount namespace of its own, writing Debian's files under $WORK/log.
start_syslog() {
	mkdir -p "$WORK/log" "$WORK/spool" "$WORK/dev"
	cat >"$WORK/rsyslog.conf" <<CONF
global(workDirectory="$WORK/spool")
module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")
*.*;auth,authpriv.none action(type="omfile" file="$WORK/log/syslog")
auth,authpriv.* action(type="omfile" file="$WORK/log/auth.log")
mail.* action(type="omfile" file="$WORK/log/mail.log")
CONF
	unshare --mount --propagation private -- sh "$HERE/private-dev.sh" "$WORK/dev" \
		/usr/sbin/rsyslogd -n -f "$WORK/rsyslog.conf" -i "$WORK/rsyslogd.pid" &
	SYSLOG_PID=$!
	PIDS+=("$SYSLOG_PID")
	local i
	for i in $(seq 100); do
		[ -S "/proc/$SYSLOG_PID/root/dev/log" ] && return 0
		sleep 0.1
	done
	echo "rsyslogd did not start" >&2
	return 1
}

# Runs "$@" in the namespace, where syslog(3) reaches our rsyslogd.
inside() {
	nsenter --mount="/proc/$SYSLOG_PID/ns/mnt" --net="/run/netns/$NS" -- "$@"
}

# Starts "$@" (a daemon kept in the foreground) inside; remembers it to stop it at the end.
daemon() {
	# nsenter without --fork execs "$@" itself: $! is the daemon's own pid.
	nsenter --mount="/proc/$SYSLOG_PID/ns/mnt" --net="/run/netns/$NS" -- "$@" &
	PIDS+=("$!")
}

# Waits until port $1 on the server's address accepts connections.
wait_port() {
	local i
	for i in $(seq 100); do
		ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$SERVER/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# Waits for the clients started in the background (not the daemons); a client that was
# refused (as they all should be) exits non-zero, which is no error here.
wait_clients() {
	local j
	for j in $(jobs -p); do
		[[ " ${PIDS[*]} " == *" $j "* ]] || wait "$j" || true
	done
}

# Creates a local user $1 with password $2, removed at the end.
make_user() {
	useradd --no-create-home --shell /bin/sh "$1"
	echo "$1:$2" | chpasswd
	USERS+=("$1")
}
USERS=()
remove_users() {
	local u
	for u in "${USERS[@]}"; do userdel "$u" 2>/dev/null || true; done
}
trap 'remove_users; cleanup' EXIT

# Copies log $1 (a path) to the fixture $2, keeping only the lines of this run.
keep() {
	mkdir -p "$(dirname "$FIXTURES/$2")"
	cp "$1" "$FIXTURES/$2"
	echo "recorded $FIXTURES/$2 ($(wc -l <"$1") lines)"
}

# The Debian version of each package in "$@", one `name version` a line.
versions() {
	dpkg-query -W -f='${Package} ${Version}\n' "$@"
}
