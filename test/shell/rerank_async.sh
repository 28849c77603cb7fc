#!/usr/bin/env bash
# Asynchronous re-ranking, on a cluster of its own (the test crashes it):
# pgformer_rerank_async queues users in the transaction (a rollback queues
# nothing), the background worker re-ranks them after commit with
# recommend's answers, as the role that queued them; a model dropped while
# queued is a log entry, not a stuck worker; queued users survive a crash
# and are drained after it.  Prints TAP.  Needs FIXTURES.
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 -d shop "$@"; }
# waits up to 30 s for the queue of database shop to be empty
drained() {
	for _ in $(seq 300); do
		[ "$(q -c "SELECT count(*) FROM pgformer_rerank_pending")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

dir=""                                  # own_cluster sets it
# shellcheck source=test/own_cluster.sh disable=SC1091
. test/own_cluster.sh
own_cluster async

echo "1..11"
echo "pgformer.rerank_database = 'shop'" >>"$dir/data/postgresql.conf"
psql -qAtX -c "CREATE DATABASE shop" -c "SELECT pg_reload_conf()" >/dev/null
q >/dev/null <<SQL
CREATE EXTENSION pgformer;
SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf');
CREATE TABLE events (user_id bigint, item_id bigint, ts timestamptz DEFAULT clock_timestamp());
SELECT pgformer_bind('recs', 'events',
    'SELECT item_id, ts FROM public.events WHERE user_id = \$1 ORDER BY ts DESC LIMIT 50');
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TRIGGER rerank_later AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgformer_rerank_async('recs', 'user_recs', 5);
CREATE ROLE shop_writer;
GRANT SELECT, INSERT ON events TO shop_writer;
GRANT SELECT, INSERT, DELETE ON user_recs TO shop_writer;
SQL
for _ in $(seq 100); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgformer re-rank worker' AND datname = 'shop'")" = 1 ] && break
	sleep 0.1
done
[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgformer re-rank worker' AND datname = 'shop'")" = 1 ]
ok $? "one re-rank worker runs, in the database pgformer.rerank_database names"

q -c "BEGIN" -c "INSERT INTO events (user_id, item_id) SELECT g % 20, g % 300 FROM generate_series(1, 500) g" \
	-c "SELECT count(*) FROM pgformer_rerank_pending" -c "ROLLBACK" >"$dir/out"
[ "$(tail -1 "$dir/out")" = 20 ] && [ "$(q -c "SELECT count(*) FROM pgformer_rerank_pending")" = 0 ]
ok $? "each user is queued once in the transaction, and a rollback queues nothing"

q -c "SET ROLE shop_writer" -c "INSERT INTO events (user_id, item_id) SELECT g % 40, g % 300 FROM generate_series(1, 2000) g"
drained
ok $? "after commit the worker drains the queue"
[ "$(q -c "SELECT count(DISTINCT user_id) FROM user_recs")" = 40 ]
ok $? "every one of the 40 users was re-ranked"
[ "$(q -c "SELECT count(*) FROM user_recs r WHERE (r.item_id, r.rank) NOT IN
        (SELECT item_id, rank FROM recommend(r.user_id, 5, 'recs'))")" = 0 ] &&
	[ "$(q -c "SELECT count(*) FROM user_recs")" = 200 ]
ok $? "with recommend's top 5, once each"
q -c "REVOKE DELETE ON user_recs FROM shop_writer"
q -c "SET ROLE shop_writer" -c "INSERT INTO events (user_id, item_id) VALUES (1, 7)"
drained
[ "$(q -c "SELECT count(*) FROM user_recs WHERE user_id = 1")" = 5 ] &&
	grep -q "permission denied for table user_recs" "$dir/log"
ok $? "the worker acts with the queuing role's rights (refused once it may not delete)"

q -c "SELECT pgformer_load('doomed', '$FIXTURES/random_sasrec.pgf')" >/dev/null
q >/dev/null <<SQL
CREATE TABLE doomed_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TABLE doomed_events (user_id bigint, item_id bigint);
CREATE TRIGGER later AFTER INSERT ON doomed_events
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank_async('doomed', 'doomed_recs', 5);
BEGIN;
INSERT INTO doomed_events VALUES (1, 1), (2, 2);
SELECT pgformer_drop('doomed');
COMMIT;
SQL
drained
ok $? "users queued for a model dropped meanwhile leave the queue"
grep -q 'could not re-rank 2 queued users with model "doomed"' "$dir/log"
ok $? "and are a warning in the server log"
worker=$(psql -qAtX -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgformer re-rank worker'")
q -c "INSERT INTO events (user_id, item_id) VALUES (77, 9)"
drained && [ "$(q -c "SELECT count(*) FROM user_recs WHERE user_id = 77")" = 5 ]
ok $? "the same worker goes on with the next users"

# queued users survive a crash: send the worker elsewhere, queue, crash, come back
echo "pgformer.rerank_database = 'postgres'" >>"$dir/data/postgresql.conf"
psql -qAtX -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 100); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pgformer re-rank worker' AND datname = 'shop'")" = 0 ] && break
	sleep 0.1
done
# (the test cluster runs with synchronous_commit off: this commit waits for its WAL)
q -c "SET synchronous_commit = on" -c "INSERT INTO events (user_id, item_id) VALUES (88, 3), (89, 4)"
queued=$(q -c "SELECT count(*) FROM pgformer_rerank_pending")
kill -9 "$(psql -qAtX -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")" 2>/dev/null ||
	kill -9 "$worker"
for _ in $(seq 100); do grep -q "all server processes terminated; reinitializing" "$dir/log" && break; sleep 0.1; done
sleep 0.5
for _ in $(seq 100); do psql -qAtX -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
[ "$queued" = 2 ] && [ "$(q -c "SELECT count(*) FROM pgformer_rerank_pending")" = 2 ] &&
	grep -qE "terminated by signal 9" "$dir/log"
ok $? "users queued before a crash are still queued after the restart"
echo "pgformer.rerank_database = 'shop'" >>"$dir/data/postgresql.conf"
psql -qAtX -c "SELECT pg_reload_conf()" >/dev/null
drained && [ "$(q -c "SELECT count(*) FROM user_recs WHERE user_id IN (88, 89)")" = 10 ]
ok $? "and are re-ranked once a worker serves the database again"
exit $failed
