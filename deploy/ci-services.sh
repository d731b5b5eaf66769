#!/usr/bin/env bash
# Start the databases the store tests use (PostgreSQL 5432, MariaDB 3306,
# Redis 6379 on loopback), each only when its port does not answer, then
# wait until all answer. Called from .ci/run before `make test`.
# It starts services; it does not install or provision them (the machine
# has PostgreSQL with trust auth and database `test`, MariaDB with root
# without password and database `test`, and Redis).
set -uo pipefail

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
	command -v pg_ctlcluster >/dev/null || { echo "ci-services: pg_ctlcluster missing (package postgresql)"; return; }
	local v
	v=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
	[ -n "$v" ] || { echo "ci-services: no cluster under /etc/postgresql"; return; }
	$SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start
}

start_redis() {
	command -v redis-server >/dev/null || { echo "ci-services: redis-server missing (package redis-server)"; return; }
	$SUDO mkdir -p /var/lib/redis /var/log/redis
	$SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log
}

start_mariadb() {
	[ -x /usr/sbin/mariadbd ] || { echo "ci-services: /usr/sbin/mariadbd missing (package mariadb-server)"; return; }
	# The socket directory lives on a tmpfs that a fresh boot empties.
	$SUDO install -d -o mysql -g mysql /run/mysqld 2>/dev/null || $SUDO mkdir -p /run/mysqld
	$SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

declare -A names=([5432]=PostgreSQL [3306]=MariaDB [6379]=Redis)
declare -A starters=([5432]=start_postgres [3306]=start_mariadb [6379]=start_redis)

for port in 5432 3306 6379; do
	if up "$port"; then
		echo "ci-services: ${names[$port]} already answers on $port"
	else
		echo "ci-services: starting ${names[$port]}"
		"${starters[$port]}" || echo "ci-services: starting ${names[$port]} failed"
	fi
done

status=0
for port in 5432 3306 6379; do
	for _ in $(seq 1 60); do
		up "$port" && break
		sleep 1
	done
	if up "$port"; then
		echo "ci-services: ${names[$port]} up on 127.0.0.1:$port"
	else
		echo "ci-services: ${names[$port]} does not answer on 127.0.0.1:$port after 60s"
		status=1
	fi
done
exit $status
