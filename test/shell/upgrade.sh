#!/usr/bin/env bash
# A database created with the released 0.1 upgrades to the current version:
# it is given models of every family, a binding and a statement-level
# re-rank trigger at 0.1, then `ALTER EXTENSION pgformer UPDATE` runs.  The
# models must answer exactly as before, the trigger keep working, and the
# extension's objects (functions with their signatures, defaults,
# volatility, parallel labels and privileges; views; tables; comments) must
# equal those of a fresh install of the current version.  Prints TAP.
# Needs PGHOST/PGUSER of a running cluster with pgformer installed (every
# released script and upgrade script too), and FIXTURES (a folder the
# server can read, holding the test fixtures and demo models).
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" pgformer.control)

# Everything that describes the extension's objects, one line each, with
# nothing that differs between two databases (oids, times).
describe() {
	q -d "$1" <<'SQL'
SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'pgformer' AND d.deptype = 'e'
UNION ALL
SELECT concat_ws(' | ', 'function ' || p.oid::regprocedure, pg_get_function_arguments(p.oid),
       pg_get_function_result(p.oid), p.prokind, p.provolatile, p.proparallel, p.proisstrict,
       p.prosecdef, p.proretset, p.procost, p.prorows, p.prosupport, p.prosrc, p.probin,
       p.proconfig::text, p.proacl::text, obj_description(p.oid, 'pg_proc'))
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'pgformer'
UNION ALL
SELECT concat_ws(' | ', 'relation ' || c.oid::regclass, c.relkind, c.relacl::text,
       pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'),
       (SELECT string_agg(concat_ws(' ', a.attname, format_type(a.atttypid, a.atttypmod),
                          a.attnotnull, a.attstorage, pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attnum)
        FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname)
        FROM pg_constraint WHERE conrelid = c.oid),
       (SELECT string_agg(pg_get_indexdef(indexrelid), ', ' ORDER BY 1) FROM pg_index WHERE indrelid = c.oid))
FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'pgformer'
UNION ALL
SELECT 'dumped ' || array_to_string(extconfig::regclass[], ',') || ' ' || array_to_string(extcondition, ',')
FROM pg_extension WHERE extname = 'pgformer'
ORDER BY 1;
SQL
}

# The answers of every model in the database, one line each.
answers() {
	q -d "$1" <<'SQL'
SELECT 'recommend ' || u || ' ' || string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM generate_series(1, 5) u, recommend(u, 5, 'recs') GROUP BY u
UNION ALL
SELECT 'score ' || request || '.' || candidate || ' ' || score('ranker', features)::text FROM hif_rows
UNION ALL
SELECT 'caption ' || idx || ' ' || caption('vlm', png) FROM fashion
UNION ALL
SELECT 'encode ' || pgformer_encode('bs', '{1,2,3}')::text
UNION ALL
SELECT 'rerank ' || user_id || ' ' || string_agg(item_id || ':' || rank, ',' ORDER BY rank)
FROM user_recs GROUP BY user_id
ORDER BY 1;
SQL
}

echo "1..10"
q -c "DROP DATABASE IF EXISTS upgrade_old" -c "DROP DATABASE IF EXISTS upgrade_new" \
	-c "CREATE DATABASE upgrade_old" -c "CREATE DATABASE upgrade_new" >/dev/null 2>&1
q -d upgrade_old >/dev/null 2>&1 <<SQL
CREATE EXTENSION pgformer VERSION '0.1';
SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf');
SELECT pgformer_load('ranker', '$FIXTURES/hif_full.pgf');
SELECT pgformer_load('vlm', '$FIXTURES/solo_tiny.pgf');
SELECT pgformer_load('bs', '$FIXTURES/bs_tiny.pgf');
SELECT pgformer_load('bs', '$FIXTURES/bs_tiny_v2.pgf');
CREATE TABLE hif_rows (model text, request int, candidate int, features jsonb, probabilities real[]);
COPY hif_rows FROM '$FIXTURES/hiformer_rows.csv' WITH (FORMAT csv, HEADER true);
DELETE FROM hif_rows WHERE model <> 'hif_full' OR request >= 20;
CREATE TABLE fashion (idx int, label int, class text, caption text, png bytea);
COPY fashion FROM '$FIXTURES/fashion_t10k.csv' WITH (FORMAT csv, HEADER true);
DELETE FROM fashion WHERE idx >= 5;
CREATE TABLE events (user_id bigint, item_id bigint, ts timestamptz);
INSERT INTO events SELECT 1 + g % 5, 1 + (g * 7) % 90, now() - g * interval '1 minute'
    FROM generate_series(1, 60) g;
SELECT pgformer_bind('recs', 'events', 'SELECT item_id, ts FROM events WHERE user_id = \$1 ORDER BY ts DESC');
CREATE TABLE user_recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TRIGGER rerank AFTER INSERT ON events REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgformer_rerank('recs', 'user_recs', 5);
INSERT INTO events VALUES (1, 3, now()), (2, 4, now());
SQL
ok $? "a database is set up at 0.1 with four models, a binding and a re-rank trigger"
[ "$(q -d upgrade_old -c "SELECT extversion FROM pg_extension WHERE extname = 'pgformer'")" = 0.1 ]
ok $? "it runs 0.1"
before=$(answers upgrade_old 2>&1)
grep ERROR <<<"$before" | sed "s/^/# /"
[ "$(grep -c '' <<<"$before")" -ge 25 ] && ! grep -q ERROR <<<"$before"
ok $? "its models answer at 0.1 ($(grep -c '' <<<"$before") answers)"

q -d upgrade_old -c "ALTER EXTENSION pgformer UPDATE" >/dev/null 2>&1
ok $? "ALTER EXTENSION pgformer UPDATE succeeds"
[ "$(q -d upgrade_old -c "SELECT extversion FROM pg_extension WHERE extname = 'pgformer'")" = "$current" ]
ok $? "and the database runs $current"
after=$(answers upgrade_old 2>&1)
[ "$before" = "$after" ]
ok $? "every model answers exactly as before the upgrade"
[ "$(q -d upgrade_old -c "SELECT bool_and(pgformer_verify(name, version)) AND count(*) = 5 FROM pgformer_models")" = t ]
ok $? "every stored version passes its checksum"
q -d upgrade_old -c "INSERT INTO events VALUES (3, 5, now())" >/dev/null 2>&1 &&
	[ "$(q -d upgrade_old -c "SELECT count(*) FROM user_recs r WHERE user_id = 3 AND (item_id, rank) NOT IN
		(SELECT item_id, rank FROM recommend(3, 5, 'recs'))")" = 0 ]
ok $? "the trigger made at 0.1 still re-ranks after the upgrade"

q -d upgrade_new -c "CREATE EXTENSION pgformer" >/dev/null 2>&1
upgraded=$(describe upgrade_old 2>&1)
fresh=$(describe upgrade_new 2>&1)
if [ "$upgraded" = "$fresh" ] && [ "$(grep -c "^function " <<<"$fresh")" -ge 25 ]; then
	ok 0 "the upgraded extension's $(grep -c '' <<<"$fresh") objects equal a fresh $current install's"
else
	ok 1 "the upgraded extension's objects equal a fresh $current install's"
	diff <(echo "$upgraded") <(echo "$fresh") | head -20 | sed "s/^/# /"
fi
[ "$(q -d upgrade_old -c "SELECT sha256 = encode(sha256(pg_read_binary_file('$FIXTURES/bs_tiny.pgf')), 'hex')
	FROM pgformer_models WHERE name = 'bs' AND version = 1")" = t ]
ok $? "pgformer_models shows the SHA-256 of versions stored at 0.1"
q -c "DROP DATABASE upgrade_old" -c "DROP DATABASE upgrade_new" >/dev/null 2>&1
exit $failed
