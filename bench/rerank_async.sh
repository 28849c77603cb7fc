#!/usr/bin/env bash
# The cost of re-ranking later: pgbench inserts single events at a steady
# RATE per second from 4 clients for SECONDS into a table without a
# trigger, then into one with a row-level pgformer_rerank_async trigger,
# while the background worker drains the queue; the queue's oldest entry
# is sampled every 100 ms.
#
#   bench/rerank_async.sh [RATE] [SECONDS]     (default 1000 10)
# Prints the mean INSERT latency of both runs and their ratio, and the
# median and p90 age of the oldest queued user during the run.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1000}
seconds=${2:-10}
bindir=$(/usr/lib/postgresql/15/bin/pg_config --bindir)
make -s fixtures
dir=""                                  # own_cluster sets it
# shellcheck source=test/own_cluster.sh disable=SC1091
. test/own_cluster.sh
own_cluster bench
cp build/fixtures/random_sasrec.pgf "$dir/"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/random_sasrec.pgf"
echo "pgformer.rerank_database = 'bench'" >>"$dir/data/postgresql.conf"
psql -qAtX -c "CREATE DATABASE bench" -c "SELECT pg_reload_conf()" >/dev/null
export PGDATABASE=bench
psql -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pgformer;
SELECT pgformer_load('recs', '$dir/random_sasrec.pgf');
CREATE TABLE plain (user_id bigint, item_id bigint, ts timestamptz DEFAULT clock_timestamp());
CREATE TABLE events (LIKE plain INCLUDING DEFAULTS);
CREATE INDEX ON events (user_id, ts);
INSERT INTO events (user_id, item_id) SELECT g % 5000, g % 300 FROM generate_series(1, 50000) g;
SELECT pgformer_bind('recs', 'events',
    'SELECT item_id, ts FROM public.events WHERE user_id = \$1 ORDER BY ts DESC LIMIT 50');
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE INDEX ON user_recs (user_id);
CREATE TRIGGER later AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank_async('recs', 'user_recs', 10);
SQL
sleep 6   # the worker moves to database bench
for table in plain events; do
	echo "\\set u random(0, 4999)
INSERT INTO $table (user_id, item_id) VALUES (:u, :u % 300);" >"$dir/$table.sql"
done

latency() {
	"$bindir/pgbench" -n -c 4 -j 2 -R "$rate" -T "$seconds" -f "$dir/$1.sql" 2>/dev/null |
		sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}
plain=$(latency plain)
(
	end=$((SECONDS + seconds))
	while [ $SECONDS -lt $end ]; do
		psql -qAtX -c "SELECT coalesce(extract(epoch FROM max(oldest)) * 1000, 0) FROM pgformer_rerank_queue"
		sleep 0.1
	done
) >"$dir/ages" &
sampler=$!
queued=$(latency events)
wait "$sampler"
for _ in $(seq 300); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pgformer_rerank_pending")" = 0 ] && break
	sleep 0.1
done
echo "$rate events/s from 4 clients for $seconds s"
echo "  INSERT latency, no trigger:         $plain ms"
echo "  INSERT latency, async re-rank:      $queued ms"
awk -v p="$plain" -v q="$queued" 'BEGIN { printf "  ratio:                              %.2fx\n", q / p }'
sort -n "$dir/ages" | awk '{ v[NR] = $1 } END {
	printf "  oldest queued user, median / p90:   %.0f / %.0f ms (%d samples)\n",
		v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], NR }'
echo "  re-ranked users: $(psql -qAtX -c "SELECT count(DISTINCT user_id) FROM user_recs"), still queued: $(psql -qAtX -c "SELECT count(*) FROM pgformer_rerank_pending")"
