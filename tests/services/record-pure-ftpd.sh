#!/usr/bin/env bash
# Records tests/tests/fixtures/services/pure-ftpd/: Debian's Pure-FTPd with the options
# Debian's pure-ftpd-wrapper builds from /etc/pure-ftpd/conf as installed (PAM
# authentication, no anonymous logins, MinUID 1000, the transfer log moved to the
# recording's directory), bound to the recording's address; it logs through syslog
# (facility ftp, so Debian's /var/log/syslog). Attacked by login-client.py (Python's
# ftplib, USER/PASS):
#   203.0.113.7   real user, 3 connections, one wrong password each
#   203.0.113.8   unknown user, 3 connections, one wrong password each
#   203.0.113.9   real user, 1 connection, 3 wrong passwords
# Needs root and: apt-get install pure-ftpd rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9
start_syslog
make_user bxftp3 'the-right-Passw0rd'
daemon /usr/sbin/pure-ftpd -l pam -E -u 1000 -O "clf:$WORK/log/transfer.log" \
	-S "$SERVER,21"
wait_port 21
client() { ip netns exec "$NS" python3 "$HERE/login-client.py" "$@"; }
for i in 1 2 3; do
	client ftp 203.0.113.7 "$SERVER" 21 bxftp3 "wrong-$i" 1 &
	client ftp 203.0.113.8 "$SERVER" 21 nosuchuser "wrong-$i" 1 &
done
client ftp 203.0.113.9 "$SERVER" 21 bxftp3 wrong 3 &
wait_clients
sleep 1
mkdir -p "$FIXTURES/pure-ftpd"
keep "$WORK/log/syslog" pure-ftpd/syslog
keep "$WORK/log/auth.log" pure-ftpd/auth.log
versions pure-ftpd pure-ftpd-common rsyslog >"$FIXTURES/pure-ftpd/versions.txt"
