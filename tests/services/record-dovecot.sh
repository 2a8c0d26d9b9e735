#!/usr/bin/env bash
# Records tests/tests/fixtures/services/dovecot/: Debian's dovecot (imapd, pop3d; its own
# /etc/dovecot configuration, passwords checked by PAM as Debian ships it), with plain-text
# logins allowed (ssl = no), attacked by login-client.py:
#   203.0.113.7   real user, IMAP, 3 connections, one wrong LOGIN each
#   203.0.113.8   unknown user, IMAP, 3 connections, one wrong LOGIN each
#   203.0.113.9   real user, POP3, 3 connections, one wrong USER/PASS each
#   203.0.113.10  real user, IMAP, 1 connection, 3 wrong LOGINs
# Needs root and: apt-get install dovecot-imapd dovecot-pop3d rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9 203.0.113.10
start_syslog
make_user bxmail1 'the-right-Passw0rd'
mkdir -p "$WORK/dovecot"
cat >"$WORK/dovecot.conf" <<CONF
!include /etc/dovecot/dovecot.conf
base_dir = $WORK/dovecot
listen = $SERVER
ssl = no
disable_plaintext_auth = no
CONF
daemon /usr/sbin/dovecot -F -c "$WORK/dovecot.conf"
wait_port 143
wait_port 110
client() { ip netns exec "$NS" python3 "$HERE/login-client.py" "$@"; }
for i in 1 2 3; do
	client imap 203.0.113.7 "$SERVER" 143 bxmail1 "wrong-$i" 1 &
	client imap 203.0.113.8 "$SERVER" 143 nosuchuser "wrong-$i" 1 &
	client pop3 203.0.113.9 "$SERVER" 110 bxmail1 "wrong-$i" 1 &
done
client imap 203.0.113.10 "$SERVER" 143 bxmail1 wrong 3 &
wait_clients
sleep 3
keep "$WORK/log/mail.log" dovecot/mail.log
keep "$WORK/log/auth.log" dovecot/auth.log
versions dovecot-core dovecot-imapd dovecot-pop3d rsyslog >"$FIXTURES/dovecot/versions.txt"
