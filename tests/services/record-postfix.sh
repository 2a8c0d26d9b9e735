#!/usr/bin/env bash
# Records tests/tests/fixtures/services/postfix/: Debian's postfix (smtpd with SASL through
# Dovecot's auth service, as Debian's documentation sets it up; passwords checked by PAM),
# no TLS, attacked by login-client.py with `AUTH PLAIN` and a wrong password:
#   203.0.113.7   real user, 3 connections, one wrong AUTH each
#   203.0.113.8   unknown user, 3 connections, one wrong AUTH each
#   203.0.113.9   real user, 1 connection, 3 wrong AUTHs
# Needs root and: apt-get install postfix dovecot-core rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9
start_syslog
make_user bxmail2 'the-right-Passw0rd'
conf=$WORK/postfix-conf
queue=$WORK/postfix-queue
mkdir -p "$conf" "$queue" "$WORK/postfix-data" "$WORK/dovecot"
cp /etc/postfix/master.cf "$conf/master.cf"
cat >"$conf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $queue
data_directory = $WORK/postfix-data
inet_interfaces = $SERVER
inet_protocols = ipv4
myhostname = mail.example.test
mydestination =
smtpd_tls_security_level = none
alias_maps =
alias_database =
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
CONF
inside postfix -c "$conf" set-permissions create-missing >/dev/null 2>&1 || true
inside postfix -c "$conf" check || { cat "$WORK/log/mail.log" >&2; exit 1; }
# Dovecot only as Postfix's SASL server (no IMAP, no POP3).
cat >"$WORK/dovecot.conf" <<CONF
!include /etc/dovecot/dovecot.conf
base_dir = $WORK/dovecot
protocols =
service auth {
  unix_listener $queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
CONF
daemon /usr/sbin/dovecot -F -c "$WORK/dovecot.conf"
daemon postfix -c "$conf" start-fg
wait_port 25
client() { ip netns exec "$NS" python3 "$HERE/login-client.py" "$@"; }
for i in 1 2 3; do
	client smtp 203.0.113.7 "$SERVER" 25 bxmail2 "wrong-$i" 1 &
	client smtp 203.0.113.8 "$SERVER" 25 nosuchuser "wrong-$i" 1 &
done
client smtp 203.0.113.9 "$SERVER" 25 bxmail2 wrong 3 &
wait_clients
sleep 3
inside postfix -c "$conf" stop >/dev/null 2>&1 || true
sleep 1
mkdir -p "$FIXTURES/postfix"
keep "$WORK/log/mail.log" postfix/mail.log
keep "$WORK/log/auth.log" postfix/auth.log
versions postfix dovecot-core rsyslog >"$FIXTURES/postfix/versions.txt"
