#!/usr/bin/env bash
# Models travel with pg_dump: a database with two versions of a model and a
# binding is dumped and restored into a new database, where the versions,
# the binding, the checksum and the answers are the same, and the next
# load continues the version numbers.  Prints TAP.  Needs PGHOST/PGUSER of a
# running cluster with pgformer installed, and FIXTURES (a folder the
# server can read).
set -u
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

echo "1..6"
q -c "DROP DATABASE IF EXISTS dump_src" -c "DROP DATABASE IF EXISTS dump_dst" \
	-c "CREATE DATABASE dump_src" -c "CREATE DATABASE dump_dst" >/dev/null 2>&1
q -d dump_src >/dev/null <<SQL
CREATE EXTENSION pgformer;
SELECT pgformer_load('m', '$FIXTURES/bs_tiny.pgf');
SELECT pgformer_load('m', '$FIXTURES/bs_tiny_v2.pgf');
SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf');
CREATE TABLE events (user_id bigint, item_id bigint, ts bigint);
SELECT pgformer_bind('recs', 'events', 'SELECT item_id, ts FROM events WHERE user_id = \$1');
SQL
dump=$(mktemp)
pg_dump -d dump_src >"$dump" 2>/dev/null
ok $? "pg_dump dumps a database holding models"
q -d dump_dst -f "$dump" >/dev/null 2>&1
ok $? "the dump restores into a new database"
rm -f "$dump"
[ "$(q -d dump_dst -c "SELECT string_agg(name || ':' || version, ',' ORDER BY name, version) FROM pgformer_models")" \
	= "m:1,m:2,recs:1" ]
ok $? "every version of every model came along"
[ "$(q -d dump_dst -c "SELECT count(*) FROM pgformer_bindings WHERE model = 'recs'")" = 1 ]
ok $? "and the bindings"
[ "$(q -d dump_dst -c "SELECT pgformer_verify('m') AND pgformer_encode('m', '{1,2,3}')::text = '$(q -d dump_src -c "SELECT pgformer_encode('m', '{1,2,3}')")'")" = t ]
ok $? "the restored model passes its checksum and answers as the original"
[ "$(q -d dump_dst -c "SELECT pgformer_load('m', '$FIXTURES/bs_tiny.pgf')")" = 3 ]
ok $? "loading again continues the version numbers"
q -c "DROP DATABASE dump_src" -c "DROP DATABASE dump_dst" >/dev/null 2>&1
exit $failed
