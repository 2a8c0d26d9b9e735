#!/usr/bin/env bash
# Records tests/tests/fixtures/services/apache2/: Debian's Apache 2.4 (its /etc/apache2
# modules as installed, mpm_event, LogLevel warn as Debian's apache2.conf) with HTTP basic
# authentication (mod_auth_basic, a user file made by htpasswd), on a configuration of its
# own; attacked by curl:
#   203.0.113.7   real user, wrong password, 3 requests
#   203.0.113.8   unknown user, 3 requests
#   203.0.113.9   as a browser does: a request without credentials (answered 401), then the
#                 same with a real user and a wrong password; 3 times
# Needs root and: apt-get install apache2 curl rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9
start_syslog
mkdir -p "$WORK/apache"
htpasswd -bc "$WORK/apache/htpasswd" alice 'the-right-Passw0rd' 2>/dev/null
cat >"$WORK/apache/apache2.conf" <<CONF
ServerRoot /etc/apache2
DefaultRuntimeDir $WORK/apache
PidFile $WORK/apache/apache2.pid
Mutex file:$WORK/apache default
User www-data
Group www-data
LogLevel warn
ErrorLog $WORK/log/apache-error.log
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
Listen $SERVER:80
ServerName www.example.test
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" combined
CustomLog $WORK/log/apache-access.log combined
DocumentRoot /var/www/html
<Directory /var/www/html>
    AuthType Basic
    AuthName "private"
    AuthUserFile $WORK/apache/htpasswd
    Require valid-user
</Directory>
CONF
daemon env APACHE_LOG_DIR="$WORK/log" APACHE_RUN_DIR="$WORK/apache" APACHE_LOCK_DIR="$WORK/apache" \
	/usr/sbin/apache2 -f "$WORK/apache/apache2.conf" -DFOREGROUND
wait_port 80
get() { ip netns exec "$NS" curl -s -o /dev/null -w "%{http_code}\n" --interface "$@" "http://$SERVER/"; }
for i in 1 2 3; do
	get 203.0.113.7 -u "alice:wrong-$i"
	get 203.0.113.8 -u "nosuchuser:wrong-$i"
	get 203.0.113.9
	get 203.0.113.9 -u "alice:wrong-$i"
done
sleep 1
mkdir -p "$FIXTURES/apache2"
keep "$WORK/log/apache-error.log" apache2/error.log
keep "$WORK/log/apache-access.log" apache2/access.log
versions apache2 apache2-bin apache2-utils curl >"$FIXTURES/apache2/versions.txt"
