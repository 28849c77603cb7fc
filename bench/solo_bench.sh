#!/usr/bin/env bash
# Prefill and decode speed of a "solo" model in pgformer's C decoder and in
# PyTorch on the same weights, in one run, with the ratio and decode as a
# fraction of the memory-bandwidth limit (weight bytes read per token x
# tokens/s over what one core reads from memory, bench/membw_bench).
#
#   bench/solo_bench.sh MODEL.pgf... [-- PROMPT_TOKENS NEW_TOKENS]
# e.g. bench/solo_bench.sh build/models/solo_smollm2.pgf demo/models/solo_tiny.pgf
# One thread each.  PyTorch runs the weights dequantised to f32.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(tools/python.sh)
models=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do models+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
prompt=${1:-64}
new=${2:-64}
export OPENBLAS_NUM_THREADS=1
make -s bench/solo_bench bench/membw_bench
bw=$(bench/membw_bench)
echo "memory bandwidth of one core: $bw GB/s; prompt $prompt tokens, $new greedy decode steps, one thread"
printf '%-28s %10s %12s %12s %12s %10s %10s\n' model weights "C prefill/s" "C decode/s" "torch dec/s" "dec ratio" "of bw"
for m in "${models[@]}"; do
	c=$(bench/solo_bench "$m" "$prompt" "$new" 1)
	p=$("$py" -m bench.solo_bench "$m" "$prompt" "$new" 1)
	bytes=$("$py" - "$m" <<'PY'
import sys
from tools import pgf
m = pgf.read(sys.argv[1], verify=False)
# every weight is read once per decode step, except the token table: one
# row of it, unless it is tied to the output layer (then all of it)
total = 0
for t in m.header.tensors:
    n = t.nbytes + t.scale_nbytes
    if t.name == "dec.emb.tok" and not m.header.solo.tied_embeddings:
        n //= t.shape[0]
    total += n
print(total)
PY
)
	c_prefill=$(sed -n 's/.*prefill [0-9]* tokens [0-9.]* ms (\([0-9.]*\) tok\/s).*/\1/p' <<<"$c")
	c_decode=$(sed -n 's/.*decode [0-9]* tokens [0-9.]* ms (\([0-9.]*\) tok\/s).*/\1/p' <<<"$c")
	p_decode=$(sed -n 's/.*decode [0-9]* tokens [0-9.]* ms (\([0-9.]*\) tok\/s).*/\1/p' <<<"$p")
	dtype=$("$py" -c "
from tools import pgf
m = pgf.read('$m', verify=False)
print(pgf.dtype_name(next(t for t in m.header.tensors if t.name.endswith('attn.q.weight')).dtype))")
	awk -v m="$(basename "$m")" -v w="$dtype" -v cp="$c_prefill" -v cd="$c_decode" -v pd="$p_decode" \
		-v b="$bytes" -v bw="$bw" 'BEGIN {
		printf "%-28s %10s %12.0f %12.1f %12.1f %9.2fx %9.0f%%\n", m, w, cp, cd, pd, cd / pd, 100 * b * cd / (bw * 1e9) }'
done
