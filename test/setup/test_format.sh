#!/usr/bin/env bash
# The formatting rules of .editorconfig, over every tracked text file:
# no trailing white space, a final newline and no carriage returns; C and
# shell indented with tabs (C with braces on their own lines, as pgindent
# lays them out); Python and SQL with spaces.  Prints TAP; names the first
# offending lines.
set -u
cd "$(dirname "$0")/../.." || exit 1
n=0 failed=0
check() { # description, then the offending lines on stdin
	local found
	found=$(head -5)
	n=$((n + 1))
	if [ -z "$found" ]; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		while IFS= read -r line; do printf '#   %s\n' "$line"; done <<<"$found"
		failed=1
	fi
}
files() { git ls-files -- "$@" | grep -v '^proto/.*pb-c\.' ; }
text=$(files '*.c' '*.h' '*.sh' '*.py' '*.sql' '*.psql' '*.md' '*.json' '*.proto' '*.txt' 'Makefile' \
	'.ci/run' '.editorconfig' '.gitignore' '*.control')

echo "1..6"
# shellcheck disable=SC2086  # file lists: one name per word
check "no trailing white space" < <(grep -nE '[[:space:]]+$' $text)
check "every file ends with a newline and has no carriage return" < <(
	for f in $text; do
		if [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ]; then echo "$f: no final newline"; fi
		if grep -q $'\r' "$f"; then echo "$f: carriage return"; fi
	done)
# shellcheck disable=SC2046
check "C is indented with tabs" < <(grep -nE '^ {2,}[^ *]|^ +\t' $(files '*.c' '*.h'))
# shellcheck disable=SC2046
check "C braces stand on their own lines" < <(
	grep -nE '\)[[:space:]]*\{[[:space:]]*$|^[[:space:]]*\}[[:space:]]*else|[^a-z_]else[[:space:]]*\{[[:space:]]*$' \
		$(files '*.c' '*.h') | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\*|/\*)')
# shell: a line indented with spaces outside a here-document
check "shell scripts are indented with tabs" < <(for f in $(files '*.sh') .ci/run; do
	awk -v f="$f" '
		inhere { if ($0 ~ "^[[:space:]]*" tag "$") inhere = 0; next }
		/<<-?[[:space:]]*['\''"]?[A-Za-z_]+['\''"]?/ {
			t = $0; sub(/.*<<-?[[:space:]]*['\''"]?/, "", t); sub(/['\''"]?([^A-Za-z_].*)?$/, "", t); tag = t; inhere = 1 }
		/^ {2,}/ && !inhere { print f ":" NR ": " $0 }' "$f"
done)
# shellcheck disable=SC2046
check "Python and SQL are indented with spaces" < <(grep -nP '\t' $(files '*.py' '*.sql' '*.psql'))
exit $failed
