#!/usr/bin/env bash
# make demo: installs what is missing, builds and installs pgformer, starts a
# throwaway PostgreSQL cluster (left running for you to explore) and runs
# the demo against the committed models in demo/models.
#
#   make demo          set up and run
#   make demo-stop     stop the demo cluster
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cluster=${PGFORMER_DEMO_DIR:-/tmp/pgformer-demo}

tools/setup-deps.sh
make -s -j2 >/dev/null
if [ "$(id -u)" -eq 0 ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi
make -s fixtures >/dev/null

if [ -f "$cluster/data/postmaster.pid" ]; then test/cluster.sh stop "$cluster" || true; fi
rm -rf "$cluster"
test/cluster.sh start "$cluster"
# shellcheck disable=SC1091
. "$cluster/env"
mkdir -p "$cluster/files"
cp build/fixtures/bs_tiny.pgf "$cluster/files/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$cluster/files"
tools/data/movielens.sh "$cluster/files/movielens.csv"
cp demo/models/fintrec_movielens.pgf "$cluster/files/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$cluster/files"
psql -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE demo" >/dev/null
psql -X -v ON_ERROR_STOP=1 -d demo -v files="$cluster/files" -f demo/foundation.sql
psql -X -v ON_ERROR_STOP=1 -d demo -v csv="$cluster/files/movielens.csv" \
	-v model="$cluster/files/fintrec_movielens.pgf" -f demo/movielens.sql

cat <<MSG

The demo cluster is still running.  Explore it with
    . $cluster/env && psql -d demo
and stop it with
    make demo-stop
MSG
