#!/usr/bin/env bash
# Records tests/tests/fixtures/services/mariadb/: Debian's MariaDB server with Debian's
# /etc/mysql configuration, a fresh data directory of the recording's own
# (mariadb-install-db), its error log written to a file (the path the jail reads is
# /var/log/mysql/error.log; Debian's default sends it to syslog through mysqld_safe or to
# the journal) and listening on the recording's address; a database account
# 'alice'@'%' with a password. Attacked by the mariadb client, whose source address is
# chosen by the route to the server (the client has no option for it):
#   203.0.113.7   real account, wrong password, 3 connections
#   203.0.113.8   unknown account, 3 connections
# Needs root and: apt-get install mariadb-server mariadb-client rsyslog
. "$(dirname "$0")/lib.sh"
make_netns 203.0.113.7 203.0.113.8
start_syslog
db=$WORK/mysql
mkdir -p "$db"
chown mysql:mysql "$db"
install -o mysql -g adm -m 0640 /dev/null "$WORK/log/mysql-error.log"
mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket \
	--skip-test-db >/dev/null 2>&1
daemon /usr/sbin/mariadbd --user=mysql --datadir="$db" --socket="$db/mysqld.sock" \
	--pid-file="$db/mysqld.pid" --bind-address="$SERVER" --port=3306 \
	--log-error="$WORK/log/mysql-error.log"
wait_port 3306
ip netns exec "$NS" mariadb --socket="$db/mysqld.sock" -u root \
	-e "CREATE USER 'alice'@'%' IDENTIFIED BY 'the-right-Passw0rd';"
login() {
	ip -n "$NS" route replace local "$SERVER" dev lo table local src "$1"
	ip netns exec "$NS" mariadb -h "$SERVER" -u "$2" -p"$3" -e 'SELECT 1' 2>&1 || true
}
for i in 1 2 3; do
	login 203.0.113.7 alice "wrong-$i"
	login 203.0.113.8 nosuchuser "wrong-$i"
done
sleep 1
mkdir -p "$FIXTURES/mariadb"
keep "$WORK/log/mysql-error.log" mariadb/error.log
versions mariadb-server mariadb-client rsyslog >"$FIXTURES/mariadb/versions.txt"
