#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repository: the files git knows
# (tracked, or new and not ignored) that end in .sh, and the executable ones
# without that ending whose first line is a sh or bash shebang (.ci/run).
# One test per script, at shellcheck's default severity.  Prints TAP.
#
#   test/setup/test_shellcheck.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
command -v shellcheck >/dev/null || { echo "Bail out! no shellcheck (tools/setup-deps.sh installs it)"; exit 1; }
git rev-parse --git-dir >/dev/null 2>&1 || { echo "Bail out! not a git checkout"; exit 1; }

scripts=()
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue   # tracked, but gone from the work tree
	case $f in
	*.sh) scripts+=("$f") ;;
	*)
		if [ -x "$f" ] && head -n 1 "$f" | grep -qE '^#!.*[/ ](ba|da)?sh([[:space:]]|$)'; then
			scripts+=("$f")
		fi
		;;
	esac
done < <(git ls-files -z --cached --others --exclude-standard | sort -z)
[ ${#scripts[@]} -gt 0 ] || { echo "Bail out! no shell scripts found"; exit 1; }

echo "1..${#scripts[@]}"
n=0 failed=0
for f in "${scripts[@]}"; do
	n=$((n + 1))
	# -x: follow the files a script sources (paths from the repository root)
	if out=$(shellcheck -x "$f" 2>&1); then
		echo "ok $n - $f"
	else
		echo "not ok $n - $f"
		while IFS= read -r line; do echo "# $line"; done <<<"$out"
		failed=1
	fi
done
exit $failed
