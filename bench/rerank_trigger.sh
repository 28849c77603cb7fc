#!/usr/bin/env bash
# What re-ranking on insert costs: a ROWS-row INSERT of events over USERS
# users into a table with no trigger, with the row-level pgformer_rerank
# trigger and with the statement-level one, beside one recommend_batch over
# the same users (the statement-level trigger should cost about that).
#
#   bench/rerank_trigger.sh [ROWS] [USERS] [RUNS]   (default 2000 200 5)
# Prints the median time of each over RUNS runs, and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-2000}
users=${2:-200}
runs=${3:-5}
make -s fixtures
dir=""                                  # own_cluster sets it
# shellcheck source=test/own_cluster.sh disable=SC1091
. test/own_cluster.sh
own_cluster bench
cp build/fixtures/random_sasrec.pgf "$dir/"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/random_sasrec.pgf"

psql -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pgformer;
SELECT pgformer_load('recs', '$dir/random_sasrec.pgf');
CREATE TABLE items AS SELECT g AS item_id FROM generate_series(1, 300) g;
CREATE TABLE events (user_id bigint, item_id bigint, ts timestamptz DEFAULT clock_timestamp());
CREATE INDEX ON events (user_id, ts);
INSERT INTO events (user_id, item_id) SELECT g % $users, g % 300 FROM generate_series(1, 20 * $users) g;
SELECT pgformer_bind('recs', 'events',
    'SELECT item_id, ts FROM public.events WHERE user_id = \$1 ORDER BY ts DESC LIMIT 50');
CREATE TABLE plain (LIKE events);
CREATE TABLE by_row (LIKE events);
CREATE TABLE by_statement (LIKE events);
CREATE TABLE recs (user_id bigint, item_id bigint, score real, rank int);
CREATE TRIGGER rerank AFTER INSERT ON by_row
    FOR EACH ROW EXECUTE FUNCTION pgformer_rerank('recs', 'public.recs', 10);
CREATE TRIGGER rerank AFTER INSERT ON by_statement REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgformer_rerank('recs', 'public.recs', 10);
SQL

# median milliseconds of a statement over the runs (each in a rolled-back transaction)
time_of() {
	for _ in $(seq "$runs"); do
		psql -qAtX -v ON_ERROR_STOP=1 <<SQL | tail -1
BEGIN;
SELECT clock_timestamp() AS t0 \gset
$1;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
ROLLBACK;
SQL
	done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

select_rows="SELECT g % $users, g % 300, clock_timestamp() FROM generate_series(1, $rows) g"
plain=$(time_of "INSERT INTO plain $select_rows")
by_row=$(time_of "INSERT INTO by_row $select_rows")
by_statement=$(time_of "INSERT INTO by_statement $select_rows")
batch=$(time_of "SELECT count(*) FROM recommend_batch(ARRAY(SELECT generate_series(0, $users - 1))::bigint[], 10, 'recs')")
echo "INSERT of $rows rows over $users users, median of $runs (ms):"
echo "  no trigger            $plain"
echo "  row-level trigger     $by_row"
echo "  statement-level       $by_statement"
echo "  recommend_batch alone $batch"
awk -v r="$by_row" -v s="$by_statement" -v b="$batch" -v p="$plain" 'BEGIN {
	printf "  row / statement: %.1fx; statement / (plain + batch): %.2f\n", r / s, s / (p + b) }'
