#!/usr/bin/env bash
# Seconds per image of a "unifork" model in pgformer's C and in PyTorch on
# the same weights, in one run, each split into the LLM steps, the depth
# head and the pixel decoder, with the ratio.  Batch 1 (one image, its
# cond and uncond rows), greedy, one thread each, f32.
#
#   bench/unifork_bench.sh [MODEL.pgf]     (default demo/models/unifork_fashion.pgf)
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(tools/python.sh)
model=${1:-demo/models/unifork_fashion.pgf}
export OPENBLAS_NUM_THREADS=1
make -s bench/unifork_bench
c=$(bench/unifork_bench "$model" 5)
p=$(PYTHONPATH=. "$py" -m bench.unifork_bench "$model" 3)
echo "$c"
echo "$p"
awk -v c="$c" -v p="$p" 'BEGIN {
	split(c, a, " "); split(p, b, " ");
	printf "pgformer is %.1fx faster than PyTorch per image\n", b[2] / a[2] }'
