#!/usr/bin/env bash
# Builds the .pgf reader fuzzer (clang, libFuzzer, AddressSanitizer) and runs
# it for SECONDS (default 60) from a seed corpus of good and broken model
# files (build/fixtures).  Exit status 0 when nothing was found.
#
#   test/fuzz/run.sh [SECONDS]        (make fuzz)
# Crashing inputs are kept in build/fuzz/ as crash-*.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus"
make -s proto/model.pb-c.h fixtures
sources=(test/fuzz/pgf_fuzz.c proto/pgf.c proto/model.pb-c.c kernels/*.c models/*.c)
read -ra blas_cflags <<<"$(pkg-config --cflags openblas)"
read -ra blas_libs <<<"$(pkg-config --libs openblas)"
clang -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I. "${blas_cflags[@]}" -o "$out/pgf_fuzz" "${sources[@]}" \
	"${blas_libs[@]}" -lprotobuf-c -lpng -ljpeg -lz -lm
cp build/fixtures/bs_tiny.pgf build/fixtures/bs_llama.pgf build/fixtures/bs_bf16.pgf \
	build/fixtures/unifork_micro.pgf build/fixtures/broken/*.pgf "$out/corpus/"
cd "$out"
ASAN_OPTIONS=detect_leaks=1 ./pgf_fuzz -max_total_time="$seconds" -max_len=300000 \
	-rss_limit_mb=2048 -print_final_stats=1 corpus 2>&1 | tail -12
