#!/usr/bin/env bash
# Records tests/tests/fixtures/services/nginx/: Debian's nginx with HTTP basic
# authentication (auth_basic, a user file made by htpasswd), its error log at Debian's
# level (error), attacked by curl:
#   203.0.113.7   real user, wrong password, 3 requests
#   203.0.113.8   unknown user, 3 requests
#   203.0.113.9   as a browser does: a request without credentials (answered 401), then the
#                 same with a real user and a wrong password; 3 times
# Needs root and: apt-get install nginx-light apache2-utils curl rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8 203.0.113.9
start_syslog
mkdir -p "$WORK/nginx"
htpasswd -bc "$WORK/nginx/htpasswd" alice 'the-right-Passw0rd' 2>/dev/null
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/log/nginx-error.log;
events {}
http {
    access_log $WORK/log/nginx-access.log;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $SERVER:80;
        server_name www.example.test;
        root /usr/share/nginx/html;
        location / {
            auth_basic "private";
            auth_basic_user_file $WORK/nginx/htpasswd;
        }
    }
}
CONF
daemon /usr/sbin/nginx -c "$WORK/nginx/nginx.conf"
wait_port 80
get() { ip netns exec "$NS" curl -s -o /dev/null -w "%{http_code}\n" --interface "$@" "http://$SERVER/"; }
for i in 1 2 3; do
	get 203.0.113.7 -u "alice:wrong-$i"
	get 203.0.113.8 -u "nosuchuser:wrong-$i"
	get 203.0.113.9
	get 203.0.113.9 -u "alice:wrong-$i"
done
sleep 1
mkdir -p "$FIXTURES/nginx"
keep "$WORK/log/nginx-error.log" nginx/error.log
keep "$WORK/log/nginx-access.log" nginx/access.log
versions nginx-light nginx-common apache2-utils curl >"$FIXTURES/nginx/versions.txt"
