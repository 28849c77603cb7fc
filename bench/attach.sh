#!/usr/bin/env bash
# Attach cost against model size: the first call of a fresh backend maps the
# (already materialised) cache file and parses its header; the data is not
# read, so 1 MB and 100 MB models should attach in the same time.
#
#   bench/attach.sh [RUNS]      (default 30 fresh backends per model)
# Prints, per model, the median and p90 of the first call's time in a fresh
# backend, of a second call in the same backend (already attached), and
# their difference: the attach cost.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(tools/python.sh)
runs=${1:-30}
dir=$(mktemp -d /tmp/pgformer-bench.XXXXXX)
chmod 755 "$dir"
make -s fixtures
"$py" - "$dir" <<'PY'
import os, sys
from tools.models import block_stack as bs
out = sys.argv[1]
# about 1 MB and about 100 MB of f32 weights
for name, cfg in (("m1", bs.Config(d=64, layers=4, heads=4, d_ff=256, vocab=2000, max_positions=64)),
                  ("m100", bs.Config(d=512, layers=8, heads=8, d_ff=2048, vocab=8000, max_positions=64))):
    size = bs.export(cfg, bs.random_weights(cfg, seed=1), os.path.join(out, name + ".pgf"), name)
    print("%s: %.1f MB" % (name, size / 1e6))
PY
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
test/cluster.sh start "$dir/cluster"
trap 'test/cluster.sh stop "$dir/cluster"; rm -rf "$dir"' EXIT
# shellcheck disable=SC1091  # written by test/cluster.sh at run time
. "$dir/cluster/env"
psql -qX -c "CREATE EXTENSION pgformer" >/dev/null
for m in m1 m100; do
	psql -qAtX -c "SELECT pgformer_load('$m', '$dir/$m.pgf')" >/dev/null
	psql -qAtX -c "SELECT pgformer_verify('$m')" >/dev/null   # materialise once
done
# the files stay in the page cache, as in service
for m in m1 m100; do
	for _ in $(seq "$runs"); do
		psql -qAtX <<SQL
\timing on
SELECT count(*) FROM pgformer_inspect('$m');
SELECT count(*) FROM pgformer_inspect('$m');
SQL
	done | grep -E '^Time:' | "$py" -c '
import statistics, sys
times = [float(line.split()[1]) for line in sys.stdin]
first, second = times[0::2], times[1::2]
attach = sorted(a - b for a, b in zip(first, second))
p90 = lambda xs: sorted(xs)[int(len(xs) * 0.9)]
print("%-5s first call %.3f ms (p90 %.3f)  second call %.3f ms  attach %.3f ms (p90 %.3f)  [%d fresh backends]" % (
    sys.argv[1], statistics.median(first), p90(first), statistics.median(second),
    statistics.median(attach), p90(attach), len(first)))' "$m"
done
