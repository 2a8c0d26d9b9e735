#!/usr/bin/env bash
# Records tests/tests/fixtures/services/vsftpd/: Debian's vsftpd with Debian's
# /etc/vsftpd.conf (local users, passwords checked by PAM, its own log in
# /var/log/vsftpd.log's format), listening on IPv4 only in the foreground, its log file
# moved to the recording's directory; attacked by curl (USER, PASS):
#   203.0.113.7   real user, 3 connections, one wrong password each
#   203.0.113.8   unknown user, 3 connections, one wrong password each
# Needs root and: apt-get install vsftpd curl rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8
start_syslog
make_user bxftp1 'the-right-Passw0rd'
sed -e 's/^listen=NO/listen=YES/' -e 's/^listen_ipv6=YES/listen_ipv6=NO/' /etc/vsftpd.conf \
	>"$WORK/vsftpd.conf"
cat >>"$WORK/vsftpd.conf" <<CONF
listen_address=$SERVER
background=NO
vsftpd_log_file=$WORK/log/vsftpd.log
CONF
daemon /usr/sbin/vsftpd "$WORK/vsftpd.conf"
wait_port 21
get() { ip netns exec "$NS" curl -s -o /dev/null -w "%{http_code}\n" --interface "$@" "ftp://$SERVER/"; }
for i in 1 2 3; do
	get 203.0.113.7 -u "bxftp1:wrong-$i" &
	get 203.0.113.8 -u "nosuchuser:wrong-$i" &
done
wait_clients
sleep 1
mkdir -p "$FIXTURES/vsftpd"
keep "$WORK/log/vsftpd.log" vsftpd/vsftpd.log
keep "$WORK/log/auth.log" vsftpd/auth.log
versions vsftpd curl rsyslog >"$FIXTURES/vsftpd/versions.txt"
