#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and the demo.
#
#   test/cluster.sh start DIR [--no-preload]   initdb + start in DIR
#   test/cluster.sh stop DIR                   stop it (DIR is kept)
#   test/cluster.sh restart DIR                restart it (after a configuration change)
#
# Data lives in DIR/data, the socket in DIR (no TCP port, so no clash with
# another server), the log in DIR/log.  Clients source DIR/env.  As root the
# server runs as the postgres user (initdb refuses root).  pgformer is
# preloaded unless --no-preload; OpenBLAS starts no threads in the postmaster.
set -euo pipefail
bindir=$("${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}" --bindir)
cmd=${1:?start or stop}; dir=${2:?directory}; preload=pgformer
[ "${3:-}" = "--no-preload" ] && preload=""

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then (cd /tmp && runuser -u postgres -- "$@"); else "$@"; fi
}

case "$cmd" in
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	if [ "$(id -u)" -eq 0 ]; then user=postgres; else user=$(id -un); fi
	as_owner "$bindir/initdb" -D "$dir/data" -U "$user" -A trust --no-sync >"$dir/initdb.log" 2>&1
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 64
shared_preload_libraries = '$preload'
log_min_messages = warning
log_line_prefix = '%m [%p] '
CONF
	as_owner env OPENBLAS_NUM_THREADS=1 "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null
	cat >"$dir/env" <<ENV
export PGHOST='$dir' PGUSER='$user' PGDATABASE=postgres
ENV
	;;
stop)
	dir=$(cd "$dir" && pwd)
	as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	;;
restart)
	dir=$(cd "$dir" && pwd)
	as_owner env OPENBLAS_NUM_THREADS=1 "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w restart >/dev/null
	;;
*)
	echo "usage: $0 start|stop|restart DIR [--no-preload]" >&2
	exit 2
	;;
esac
