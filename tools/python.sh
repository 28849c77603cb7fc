#!/usr/bin/env sh
# Prints the Python interpreter the tools run under: $PYTHON when set, else
# the first python3 on PATH that sees PyTorch, NumPy and protobuf (Debian's
# python3-torch, python3-numpy, python3-protobuf), else Debian's own.  A
# python3 from pyenv or a venv without those packages is passed over.
if [ -n "${PYTHON:-}" ]; then
	echo "$PYTHON"
	exit 0
fi
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 &&
		"$p" -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("torch", "numpy", "google.protobuf")))' 2>/dev/null; then
		command -v "$p"
		exit 0
	fi
done
echo /usr/bin/python3
