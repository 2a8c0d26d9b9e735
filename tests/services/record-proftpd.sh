#!/usr/bin/env bash
# Records tests/tests/fixtures/services/proftpd/: Debian's ProFTPD (proftpd-basic) with
# Debian's /etc/proftpd/proftpd.conf (local users, PAM, its SystemLog), changed only to
# listen on the recording's address over IPv4 and keep its files
# in the recording's directory; attacked by login-client.py (Python's ftplib, USER/PASS):
#   203.0.113.7   real user, 3 connections, one wrong password each
#   203.0.113.8   unknown user, 3 connections, one wrong password each
#   203.0.113.9   real user, 1 connection, 3 wrong passwords (ProFTPD's MaxLoginAttempts)
# Needs root and: apt-get install proftpd-basic rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9
start_syslog
make_user bxftp2 'the-right-Passw0rd'
mkdir -p "$WORK/proftpd"
sed -e 's/^UseIPv6.*/UseIPv6 off/' \
	-e "s|^SystemLog.*|SystemLog $WORK/log/proftpd.log|" \
	-e "s|^TransferLog.*|TransferLog $WORK/log/xferlog|" \
	-e "s|^\(\s*\)ControlsSocket.*|\1ControlsSocket $WORK/proftpd/proftpd.sock|" \
	/etc/proftpd/proftpd.conf >"$WORK/proftpd/proftpd.conf"
cat >>"$WORK/proftpd/proftpd.conf" <<CONF
DefaultAddress $SERVER
SocketBindTight on
PidFile $WORK/proftpd/proftpd.pid
ScoreboardFile $WORK/proftpd/proftpd.scoreboard
<IfModule mod_delay.c>
  DelayTable $WORK/proftpd/proftpd.delay
</IfModule>
CONF
# In the foreground (-n) ProFTPD writes its log to stderr, not its SystemLog: it runs as
# Debian runs it, detached, and is stopped by its pid file.
inside /usr/sbin/proftpd -c "$WORK/proftpd/proftpd.conf"
wait_port 21
PIDS+=("$(cat "$WORK/proftpd/proftpd.pid")")
client() { ip netns exec "$NS" python3 "$HERE/login-client.py" "$@"; }
for i in 1 2 3; do
	client ftp 203.0.113.7 "$SERVER" 21 bxftp2 "wrong-$i" 1 &
	client ftp 203.0.113.8 "$SERVER" 21 nosuchuser "wrong-$i" 1 &
done
client ftp 203.0.113.9 "$SERVER" 21 bxftp2 wrong 3 &
wait_clients
sleep 1
mkdir -p "$FIXTURES/proftpd"
keep "$WORK/log/proftpd.log" proftpd/proftpd.log
keep "$WORK/log/auth.log" proftpd/auth.log
versions proftpd-basic proftpd-core rsyslog >"$FIXTURES/proftpd/versions.txt" 2>/dev/null ||
	versions proftpd-basic rsyslog >"$FIXTURES/proftpd/versions.txt"
