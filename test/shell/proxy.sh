#!/usr/bin/env bash
# The scale-out kit: two shard clusters with pgformer and a PL/Proxy node
# with pgformer_proxy, on Unix sockets, plus a single-node database holding
# every user for reference.  Through the proxy: loads give every shard the
# same version of the same bytes (repeating one, or finishing one that
# stopped half-way, changes nothing else); answers equal the single node's,
# a null user included; a shard that is down is an error naming it, with
# the other shard unchanged.  A hot standby of a shard made with
# pg_basebackup answers recommend() and follows a version loaded on the
# primary.  Prints TAP.  Needs FIXTURES (test fixtures and demo models).
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
bindir=$("${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}" --bindir)
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd /tmp && runuser -u postgres -- "$@"); else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then user=postgres; else user=$(id -un); fi

root=$(mktemp -d /tmp/pgformer-proxy.XXXXXX)
chmod 755 "$root"
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	for c in standby shard0 shard1 proxy; do
		[ -d "$root/$c/data" ] && as_owner "$bindir/pg_ctl" -D "$root/$c/data" -m immediate -w stop >/dev/null 2>&1
	done
	rm -rf "$root"
}
trap cleanup EXIT
for c in shard0 shard1 proxy; do
	if ! test/cluster.sh start "$root/$c" >/dev/null; then
		echo "Bail out! could not start a cluster in $root/$c"
		exit 1
	fi
done
# q NODE DB SQL...: one psql call on a node
q() { local node=$1 db=$2; shift 2; psql -qAtX -v ON_ERROR_STOP=1 -h "$root/$node" -U "$user" -d "$db" "$@"; }
px() { q proxy proxy "$@"; }
shard_files() { q "$1" app -c "SELECT string_agg(name || ':' || version || ':' || sha256, ' ' ORDER BY name, version) FROM pgformer_models"; }

echo "1..25"
setup_node() { # node db: pgformer and the events table
	q "$1" postgres -c "CREATE DATABASE $2" >/dev/null &&
		q "$1" "$2" -c "CREATE EXTENSION pgformer" \
			-c "CREATE TABLE events (model text, user_id bigint, item_id bigint, ts bigint, event_type int, channel int)"
}
setup_node shard0 app && setup_node shard1 app && setup_node shard0 single &&
	q shard0 single -c "COPY events FROM '$FIXTURES/fintrec_events.csv' WITH (FORMAT csv, HEADER true)" \
		-c "DELETE FROM events WHERE model <> 'random_sasrec'" &&
	for s in 0 1; do
		q shard0 single -c "COPY (SELECT * FROM events WHERE coalesce(hashint8(user_id), 0) & 1 = $s) TO STDOUT" |
			q shard$s app -c "COPY events FROM STDIN" || exit 1
	done &&
	q proxy postgres -c "CREATE DATABASE proxy" &&
	px -c "CREATE EXTENSION plproxy" -c "CREATE EXTENSION pgformer_proxy" \
		-c "CREATE SERVER pgformer_shards FOREIGN DATA WRAPPER plproxy
		    OPTIONS (p0 'host=$root/shard0 dbname=app', p1 'host=$root/shard1 dbname=app')" \
		-c "CREATE USER MAPPING FOR PUBLIC SERVER pgformer_shards" >/dev/null
ok $? "two shards with pgformer, each holding its users' events, and a proxy with pgformer_proxy"
[ "$(q shard0 app -c "SELECT count(DISTINCT user_id) FROM events")" -gt 10 ] &&
	[ "$(q shard1 app -c "SELECT count(DISTINCT user_id) FROM events")" -gt 10 ]
ok $? "both shards hold users"

q proxy postgres -c "CREATE DATABASE noshards" >/dev/null &&
	q proxy noshards -c "CREATE EXTENSION plproxy" -c "CREATE EXTENSION pgformer_proxy" >/dev/null
out=$(q proxy noshards -c "SELECT pgformer_load('m', '\\x00'::bytea)" 2>&1)
grep -q 'no shards: server pgformer_shards has no partitions' <<<"$out"
ok $? "without the pgformer_shards server a load says there are no shards"

# ---- the store on every shard ----
bind="SELECT item_id, ts FROM events WHERE user_id = \$1 ORDER BY ts DESC"
q shard0 single -c "SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf')" \
	-c "SELECT pgformer_load('vlm', '$FIXTURES/solo_tiny.pgf')" \
	-c "SELECT pgformer_load('ranker', '$FIXTURES/hif_full.pgf')" \
	-c "SELECT pgformer_bind('recs', 'events', '$bind')" >/dev/null
[ "$(px -c "SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf')" \
	-c "SELECT pgformer_load('vlm', pg_read_binary_file('$FIXTURES/solo_tiny.pgf'))" \
	-c "SELECT pgformer_load('ranker', '$FIXTURES/hif_full.pgf', 1)" | tr '\n' ' ')" = "1 1 1 " ]
ok $? "loads through the proxy: from a path, as bytes, with an explicit version"
[ "$(shard_files shard0)" = "$(shard_files shard1)" ] && [ -n "$(shard_files shard0)" ]
ok $? "every shard holds the same versions with the same SHA-256"
[ "$(px -c "SELECT pgformer_load('recs', '$FIXTURES/random_sasrec.pgf')")" = 1 ] &&
	[ "$(px -c "SELECT count(*) FROM pgformer_models WHERE name = 'recs'")" = 2 ]
ok $? "loading the same file again returns its version and adds none"
[ "$(px -c "SELECT count(DISTINCT (name, version, sha256)) = count(*) / 2 AND count(DISTINCT shard) = 2
	FROM pgformer_models")" = t ]
ok $? "the proxy's pgformer_models shows each shard's versions and checksums"
px -c "SELECT pgformer_bind('recs', 'events', '$bind')" >/dev/null &&
	[ "$(px -c "SELECT count(*) FROM pgformer_bindings WHERE model = 'recs'")" = 2 ]
ok $? "a binding made through the proxy is on every shard"

# a load that stopped after the first shard: repeating it finishes it
q shard0 app -c "SELECT pgformer_load('recs', '$FIXTURES/random_decoder.pgf', 2)" >/dev/null
[ "$(px -c "SELECT pgformer_load('recs', '$FIXTURES/random_decoder.pgf')")" = 2 ] &&
	[ "$(shard_files shard0)" = "$(shard_files shard1)" ]
ok $? "a load half done (on one shard only) is finished by repeating it, under the same version"
out=$(px -c "SELECT pgformer_load('recs', '$FIXTURES/bs_tiny.pgf', 2)" 2>&1)
grep -q 'version 2 of model "recs" already exists with other contents on shard 0' <<<"$out" &&
	[ "$(shard_files shard0)" = "$(shard_files shard1)" ]
ok $? "other bytes under a taken version are refused before any shard changes"
[ "$(px -c "SELECT pgformer_drop('recs', 2)")" = 1 ] && [ "$(shard_files shard0)" = "$(shard_files shard1)" ] &&
	[ "$(q shard1 app -c "SELECT max(version) FROM pgformer_models WHERE name = 'recs'")" = 1 ]
ok $? "dropping a version through the proxy drops it on every shard"

# ---- answers equal the single node's ----
users=$(q shard0 single -c "SELECT string_agg(DISTINCT user_id::text, ',') FROM events")
answers_of() { # node db: recommend for every user and a null one, a batch, and the calls about no user
	q "$1" "$2" <<SQL
SELECT 'recommend ' || coalesce(u::text, 'null') || ' ' || string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM unnest('{$users,NULL,999999}'::bigint[]) u, recommend(u, 5, 'recs') GROUP BY u
UNION ALL
SELECT 'from ' || string_agg(item_id || ':' || score, ',' ORDER BY rank)
FROM recommend_from('recs', '{1,2,3}')
UNION ALL
SELECT 'score ' || score('ranker', '{"u_cat": 2, "u_dense": 0.5, "i_cat": 3}')
UNION ALL
SELECT 'embedding ' || image_embedding('vlm', pg_read_binary_file('$FIXTURES/images/photos/' ||
       (SELECT min(f) FROM pg_ls_dir('$FIXTURES/images/photos') f WHERE f LIKE '%.png')))::text
ORDER BY 1;
SQL
}
single=$(answers_of shard0 single 2>&1)
proxied=$(answers_of proxy proxy 2>&1)
if [ "$single" = "$proxied" ] && [ "$(grep -c '^recommend ' <<<"$single")" -gt 20 ]; then
	ok 0 "recommend, recommend_from, score and image_embedding through the proxy equal the single node's ($(grep -c '' <<<"$single") answers)"
else
	ok 1 "answers through the proxy equal the single node's"
	diff <(echo "$single") <(echo "$proxied") | head -10 | sed 's/^/# /'
fi
# A batch's scores depend on which users share a pass (the GEMM blocking
# changes) by a few units in the last place: items and ranks must be
# equal, scores within 1e-5.
batch_of() {
	q "$1" "$2" -F ' ' -c "SELECT coalesce(user_id::text, 'null'), rank, item_id, score
		FROM recommend_batch('{$users,NULL}'::bigint[], 3, 'recs') ORDER BY 1, 2"
}
paste -d ' ' <(batch_of shard0 single 2>&1) <(batch_of proxy proxy 2>&1) |
	awk 'NF != 8 || $1 != $5 || $2 != $6 || $3 != $7 || ($4 - $8 > 1e-5 || $8 - $4 > 1e-5) { bad++ }
	     END { exit (bad > 0 || NR < 60) }'
ok $? "recommend_batch through the proxy (split by shard) equals the single node's batch"
grep -q '^recommend null ' <<<"$proxied" && [ "$(px -c "SELECT count(*) FROM recommend_batch('{NULL,NULL}', 3, 'recs')")" = 6 ]
ok $? "a null user goes through the proxy (to the first shard) and gets the cold-start answer"
[ "$(px -c "SELECT count(*) FROM recommend_batch(NULL::bigint[], 3, 'recs')")" = \
	"$(q shard0 single -c "SELECT count(*) FROM recommend_batch(NULL::bigint[], 3, 'recs')")" ]
ok $? "a null batch gives what the single node gives"
[ "$(px -c "SELECT pgformer_verify('recs')")" = t ]
ok $? "pgformer_verify checks the copy on every shard"

# ---- privileges ----
px -c "CREATE ROLE proxy_user LOGIN" >/dev/null
for s in 0 1; do q shard$s app -c "CREATE ROLE proxy_user LOGIN" -c "GRANT SELECT ON events TO proxy_user" >/dev/null; done
px -c "GRANT USAGE ON FOREIGN SERVER pgformer_shards TO proxy_user" >/dev/null
out=$(psql -qAtX -h "$root/proxy" -U proxy_user -d proxy -c "SELECT pgformer_drop('recs')" 2>&1)
grep -q 'permission denied for function pgformer_drop' <<<"$out" &&
	[ "$(psql -qAtX -h "$root/proxy" -U proxy_user -d proxy -c "SELECT count(*) FROM recommend(7, 3, 'recs')")" = 3 ]
ok $? "ordinary users may not change the store through the proxy but may call the models"

# ---- a shard that is down ----
as_owner "$bindir/pg_ctl" -D "$root/shard1/data" -m fast -w stop >/dev/null
before=$(shard_files shard0)
out=$(px -c "SELECT pgformer_load('recs', '$FIXTURES/random_encoder.pgf')" 2>&1)
grep -q "shard 1 (host=$root/shard1 dbname=app) did not answer" <<<"$out" && grep -q 'Nothing was changed' <<<"$out" &&
	[ "$(shard_files shard0)" = "$before" ]
ok $? "a load while a shard is down is an error naming the shard, and the other shard is unchanged"
on1=$(q shard0 single -c "SELECT user_id FROM events WHERE coalesce(hashint8(user_id), 0) & 1 = 1 LIMIT 1")
on0=$(q shard0 single -c "SELECT user_id FROM events WHERE coalesce(hashint8(user_id), 0) & 1 = 0 LIMIT 1")
out=$(px -c "SELECT count(*) FROM recommend($on1, 3, 'recs')" 2>&1)
grep -q "$root/shard1" <<<"$out" && [ "$(px -c "SELECT count(*) FROM recommend($on0, 3, 'recs')")" = 3 ]
ok $? "a user of the down shard gets an error naming it; users of the other shard are served"
as_owner env OPENBLAS_NUM_THREADS=1 "$bindir/pg_ctl" -D "$root/shard1/data" -l "$root/shard1/log" -w start >/dev/null
[ "$(px -c "SELECT pgformer_load('recs', '$FIXTURES/random_encoder.pgf')")" = 2 ] &&
	[ "$(shard_files shard0)" = "$(shard_files shard1)" ]
ok $? "once the shard is back the load goes through, as one version everywhere"

# ---- a hot standby of shard 0 ----
mkdir -p "$root/standby" && [ "$(id -u)" -eq 0 ] && chown postgres: "$root/standby"
as_owner "$bindir/pg_basebackup" -h "$root/shard0" -U "$user" -D "$root/standby/data" -R -X stream -c fast >/dev/null 2>&1 &&
	echo "unix_socket_directories = '$root/standby'" >>"$root/standby/data/postgresql.conf" &&
	as_owner env OPENBLAS_NUM_THREADS=1 "$bindir/pg_ctl" -D "$root/standby/data" -l "$root/standby/log" -w start >/dev/null &&
	[ "$(q standby app -c "SELECT pg_is_in_recovery()")" = t ]
ok $? "a hot standby of shard 0 made with pg_basebackup starts"
rec() { q "$1" app -c "SELECT string_agg(item_id || ':' || score, ',' ORDER BY rank) FROM recommend($on0, 5, 'recs', at => '2030-01-01')"; }
[ "$(rec standby)" = "$(rec shard0)" ] && [ -n "$(rec standby)" ]
ok $? "the standby answers recommend() as its primary does"
v2=$(rec standby)
px -c "SELECT pgformer_load('recs', '$FIXTURES/random_decoder.pgf')" >/dev/null
for _ in $(seq 50); do
	[ "$(q standby app -c "SELECT max(version) FROM pgformer_models WHERE name = 'recs'")" = 3 ] && break
	sleep 0.2
done
got=$(rec standby 2>&1)
[ "$(q standby app -c "SELECT max(version) FROM pgformer_models WHERE name = 'recs'")" = 3 ] &&
	[ "$got" = "$(rec shard0)" ] && [ "$got" != "$v2" ] && [ -n "$got" ]
ok $? "it follows a version loaded on the primary through the proxy, and answers with it"
[ "$got" = "$(rec shard0)" ] || echo "# standby: $got; primary: $(rec shard0)"
[ -n "$(find "$root/standby/data/pgformer" -name '*.pgf' 2>/dev/null)" ]
ok $? "its cache files live in \$PGDATA/pgformer"
[ "$(px -c "SELECT pgformer_drop('recs')")" = 3 ] &&
	[ "$(q shard1 app -c "SELECT count(*) FROM pgformer_models WHERE name = 'recs'")" = 0 ]
ok $? "dropping a model through the proxy removes every version from every shard"
exit $failed
