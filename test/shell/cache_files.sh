#!/usr/bin/env bash
# The cache folder on disk, on a cluster of its own (the test damages files
# and restarts the server): cache files are read-only copies named by a key
# unique to the stored version; a file changed on disk is rebuilt at the
# next attach, or found by pgformer_verify; files nobody can use go
# (dropped versions, dropped databases, a dropped and recreated extension,
# temporary files of backends that are gone), temporary files count
# against pgformer.cache_size, and the folder starts empty with the server.
# Prints TAP.  Needs FIXTURES (a folder the server can read).
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

dir=""                                  # own_cluster sets it
# shellcheck source=test/own_cluster.sh disable=SC1091
. test/own_cluster.sh
own_cluster cache
cache=$dir/data/pgformer

# One byte of a file flipped in place (as the server's OS user could).
flip_byte() {
	chmod u+w "$1"
	python3 - "$1" <<'PY'
import os, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}

# The names in the cache folder, one per line.
names() { find "$cache" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null; }

# The .pgf cache files of database $1's model $2 (by catalog id).
files_of() { names | grep -E "^$1_$2_[0-9a-f]{32}\.pgf$"; }

echo "1..22"
q -c "CREATE DATABASE cf" >/dev/null
db=$(q -c "SELECT oid FROM pg_database WHERE datname = 'cf'")
q -d cf >/dev/null <<SQL
CREATE EXTENSION pgformer;
CREATE EXTENSION dblink;
SELECT pgformer_load('m', '$FIXTURES/bs_tiny.pgf');
SQL
expected=$(q -d cf -c "SELECT pgformer_encode('m', '{1,2,3}')")
id=$(q -d cf -c "SELECT id FROM pgformer_model WHERE name = 'm'")
file=$(files_of "$db" "$id")
[ -n "$file" ] && [ "$(echo "$file" | wc -l)" = 1 ] && [ -f "$cache/${file%.pgf}.ok" ]
ok $? "the cache file is named <database>_<id>_<key>.pgf and has its sidecar"
[ "$(stat -c %a "$cache/$file")" = 400 ]
ok $? "it is read-only"
cmp -s "$cache/$file" "$FIXTURES/bs_tiny.pgf"
ok $? "it holds the model file byte for byte"

# damage on disk after the check: the next attach rebuilds it
flip_byte "$cache/$file"
out=$(q -d cf -c "SELECT pgformer_encode('m', '{1,2,3}')" 2>&1)
[ "$(echo "$out" | tail -1)" = "$expected" ]
ok $? "a new session answers right from a file damaged on disk"
echo "$out" | grep -q "changed on disk after it was checked"
ok $? "and warns that the file changed on disk"
cmp -s "$cache/$file" "$FIXTURES/bs_tiny.pgf"
ok $? "the file was made again from the catalog"

# damage under a backend that has the file mapped: pgformer_verify finds it
out=$(q -d cf 2>&1 <<SQL
SELECT dblink_connect('s', 'dbname=cf host=$PGHOST user=$PGUSER');
SELECT * FROM dblink('s', \$\$SELECT pgformer_encode('m', '{1}') IS NOT NULL\$\$) AS t(ok boolean);
\! python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))" $cache/$file 2>/dev/null || (chmod u+w $cache/$file && python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))" $cache/$file)
SELECT * FROM dblink('s', \$\$SELECT pgformer_verify('m')\$\$) AS t(ok boolean);
SQL
)
[ "$(echo "$out" | tail -1)" = f ]
ok $? "pgformer_verify in a backend mapping a damaged copy says false"
[ -z "$(files_of "$db" "$id")" ]
ok $? "and removes the file"
[ "$(q -d cf -c "SELECT pgformer_encode('m', '{1,2,3}') = '$expected' AND pgformer_verify('m')")" = t ]
ok $? "the next call makes a good copy"

# a dropped and recreated extension reuses ids: its files must not be taken
PYTHONPATH=. "$(tools/python.sh)" - "$FIXTURES/bs_tiny.pgf" "$dir/variant.pgf" <<'PY'
import struct, sys
from tools import pgf
blob = open(sys.argv[1], "rb").read()
model = pgf.parse(blob)
model.header.metadata["variant"] = "recreated"
header = model.header.SerializeToString()
start = 16 + len(header)
pad = (start + 63) // 64 * 64 - start
with open(sys.argv[2], "wb") as f:
    f.write(pgf.MAGIC + struct.pack("<II", pgf.FORMAT_VERSION, len(header)) + header
            + b"\0" * pad + blob[model.data_offset:])
PY
chmod 644 "$dir/variant.pgf"
q -d cf -c "DROP EXTENSION pgformer" >/dev/null
! names | grep -qE "^${db}_"
ok $? "DROP EXTENSION removes the database's cache files when it commits"
q -d cf -c "CREATE EXTENSION pgformer" >/dev/null
q -d cf -c "SELECT pgformer_load('m', '$dir/variant.pgf')" >/dev/null
[ "$(q -d cf -c "SELECT id FROM pgformer_model WHERE name = 'm'")" = "$id" ]
ok $? "the recreated extension gives the new model the old id"
[ "$(q -d cf -c "SELECT pgformer_metadata('m') ->> 'variant'")" = recreated ]
ok $? "and serves the new file, not the old one (same id, same data checksum)"
[ "$(files_of "$db" "$id" | wc -l)" = 1 ]
ok $? "the old extension's file is gone"

# files nobody can use go at the next tidy-up
key=0123456789abcdef0123456789abcdef
for f in "tmp.999999.$id" "${db}_424242_$key.pgf" "${db}_424242_$key.ok" "4000000000_1_$key.pgf" \
	"${db}_77_$key.ok"; do
	head -c 1000 /dev/zero >"$cache/$f"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$cache/$f"
done
q -c "CREATE DATABASE cf_gone" >/dev/null
gone=$(q -c "SELECT oid FROM pg_database WHERE datname = 'cf_gone'")
q -d cf_gone -c "CREATE EXTENSION pgformer" -c "SELECT pgformer_load('g', '$FIXTURES/bs_tiny.pgf')" \
	-c "SELECT pgformer_encode('g', '{1}') IS NOT NULL" >/dev/null
[ -n "$(files_of "$gone" 1)" ]
ok $? "a second database has its own cache file"
q -c "DROP DATABASE cf_gone" >/dev/null
[ -z "$(files_of "$gone" 1)" ]
ok $? "DROP DATABASE removes its cache files"
q -d cf -c "SELECT pgformer_encode('m', '{1}') IS NOT NULL" >/dev/null
left=$(names | grep -cE "^(tmp\.999999\.|${db}_424242_|4000000000_|${db}_77_|${gone}_)")
[ "$left" = 0 ]
ok $? "a new session removes temporary files of dead backends, files of unknown versions, of dropped databases, and stray sidecars"

# a version dropped while another session makes its file
q -d cf -c "SELECT pgformer_load('late', '$FIXTURES/bs_tiny_v2.pgf')" >/dev/null
late=$(q -d cf -c "SELECT id FROM pgformer_model WHERE name = 'late'")
q -d cf >/dev/null 2>&1 <<SQL
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM pgformer_models;
\! psql -qAtX -d cf -c "SELECT pgformer_drop('late')"
SELECT pgformer_encode('late', '{1,2}') IS NOT NULL;
COMMIT;
\! find $cache -name "${db}_${late}_*.pgf" | grep -q . && touch $dir/late.seen
SELECT pgformer_encode('m', '{1}') IS NOT NULL;
SQL
[ -f "$dir/late.seen" ]
ok $? "a session whose snapshot predates a drop still serves and caches the version"
[ -z "$(files_of "$db" "$late")" ]
ok $? "and removes the file once the drop reaches it"

# temporary files count against pgformer.cache_size; a dead writer's go
psql -qAtX -d cf -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
for _ in $(seq 50); do
	writer=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()")
	[ -n "$writer" ] && break
	sleep 0.1
done
head -c $((3 * 1024 * 1024)) /dev/zero >"$cache/tmp.$writer.999"
[ "$(id -u)" -eq 0 ] && chown postgres: "$cache/tmp.$writer.999"
q -d cf -c "SELECT pgformer_load('other', '$FIXTURES/bs_tiny_v2.pgf')" >/dev/null
q -c "ALTER SYSTEM SET pgformer.cache_size = '2MB'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
q -d cf -c "SELECT pgformer_encode('other', '{1}') IS NOT NULL" >/dev/null
[ -z "$(files_of "$db" "$id")" ] && [ -f "$cache/tmp.$writer.999" ]
ok $? "a live writer's temporary file counts: the unmapped file of another model went to fit the budget"
q -c "SELECT pg_terminate_backend($writer)" >/dev/null
wait "$sleeper" 2>/dev/null
q -d cf -c "SELECT pgformer_encode('m', '{1}') IS NOT NULL" >/dev/null
[ ! -f "$cache/tmp.$writer.999" ]
ok $? "once its writer is gone, the next tidy-up removes it"
q -c "ALTER SYSTEM RESET pgformer.cache_size" -c "SELECT pg_reload_conf()" >/dev/null

# the folder starts empty with the server
test/cluster.sh restart "$dir"
[ -z "$(names)" ]
ok $? "a restarted server starts with an empty cache folder"
[ "$(q -d cf -c "SELECT pgformer_encode('m', '{1,2,3}') = '$expected' AND pgformer_verify('m')")" = t ]
ok $? "and makes the files again on first use"
exit $failed
