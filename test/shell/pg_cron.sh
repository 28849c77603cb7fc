#!/usr/bin/env bash
# The README's pg_cron recipe, on a cluster of its own that listens on a
# Unix socket only: with cron.host set to the socket folder, a job
# scheduled every minute refills a recommendations table from
# recommend_batch, once, within about a minute.  Prints TAP.  Needs
# FIXTURES (a folder the server can read).
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

if [ ! -f "$("${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}" --pkglibdir)/pg_cron.so" ]; then
	echo "Bail out! pg_cron is not installed (Debian package postgresql-15-cron)"
	exit 1
fi
dir=""                                  # own_cluster sets it
# shellcheck source=test/own_cluster.sh disable=SC1091
. test/own_cluster.sh
own_cluster cron

echo "1..5"
# the recipe's server settings: pg_cron beside pgformer, jobs in database
# "shop", connecting through the socket folder (the server has no TCP port)
cat >>"$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pgformer,pg_cron'
cron.database_name = 'shop'
cron.host = '$dir'
CONF
test/cluster.sh restart "$dir"
q -c "CREATE DATABASE shop" >/dev/null
q -d shop >/dev/null <<SQL
CREATE EXTENSION pgformer;
CREATE EXTENSION pg_cron;
SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf');
CREATE TABLE users (id bigint PRIMARY KEY);
INSERT INTO users SELECT generate_series(1, 50);
CREATE TABLE events (user_id bigint, item_id bigint, ts timestamptz);
INSERT INTO events SELECT u, (u * 7 + i) % 300, now() - i * interval '1 hour'
    FROM generate_series(1, 50) u, generate_series(1, 10) i;
SELECT pgformer_bind('recs', 'events',
    'SELECT item_id, ts FROM public.events WHERE user_id = \$1 ORDER BY ts DESC LIMIT 50');
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
SQL
[ "$(q -d shop -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'")" = 1 ]
ok $? "pg_cron runs beside pgformer"

# the job of the recipe (every minute here, nightly in the README)
q -d shop -c "SELECT cron.schedule('refill-recs', '* * * * *', \$\$
    DELETE FROM user_recs;
    INSERT INTO user_recs
        SELECT user_id, item_id, score, rank
        FROM recommend_batch(ARRAY(SELECT id FROM users ORDER BY id), 10, 'recs')\$\$)" >/dev/null
[ "$(q -d shop -c "SELECT nodename FROM cron.job WHERE jobname = 'refill-recs'")" = "$dir" ]
ok $? "the job connects through the socket folder (cron.host)"
for _ in $(seq 90); do
	[ "$(q -d shop -c "SELECT count(*) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')")" -gt 0 ] && break
	sleep 1
done
q -d shop -c "SELECT cron.unschedule('refill-recs')" >/dev/null
[ "$(q -d shop -c "SELECT string_agg(status, ',') FROM cron.job_run_details")" = succeeded ]
ok $? "it ran once within a minute and a half, and succeeded"
[ "$(q -d shop -c "SELECT count(*) FROM user_recs")" = 500 ]
ok $? "it refilled the table: 10 rows for each of 50 users"
[ "$(q -d shop -c "SELECT count(*) FROM user_recs r WHERE (r.item_id, r.rank) NOT IN
        (SELECT item_id, rank FROM recommend(r.user_id, 10, 'recs'))")" = 0 ]
ok $? "with recommend's answers"
exit $failed
