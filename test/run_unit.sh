#!/usr/bin/env bash
# Runs C unit-test binaries (TAP) and prints a summary line.
# Usage: test/run_unit.sh BIN... ; exit status is nonzero if any failed.
set -u
pass=0 fail=0
for bin in "$@"; do
	out=$("$bin" 2>&1); rc=$?
	printf '%s\n' "$out" | sed "s|^|$(basename "$bin"): |"
	p=$(printf '%s\n' "$out" | grep -cE '^ok ')
	f=$(printf '%s\n' "$out" | grep -cE '^not ok ')
	plan=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9]*\)$/\1/p' | head -1)
	missing=0
	if [ -n "$plan" ] && [ $((p + f)) -lt "$plan" ]; then missing=$((plan - p - f)); fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$missing" -eq 0 ]; then missing=1; fi
	pass=$((pass + p)); fail=$((fail + f + missing))
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
