#!/usr/bin/env bash
# The whole test suite (`make test`):
#   1. installs missing Debian packages (tools/setup-deps.sh),
#   2. runs the checks of the setup itself in test/setup (no server): the
#      installer against stand-ins for apt-get and sudo, and shellcheck on
#      every shell script,
#   3. builds and installs the extension,
#   4. runs the C unit tests (TAP, against PyTorch goldens), again built
#      with AddressSanitizer and UndefinedBehaviorSanitizer, and fuzzes the
#      model-file reader for 20 seconds,
#   5. starts a throwaway cluster with pgformer preloaded and runs the pgTAP
#      suites in test/sql with pg_prove and the client-side checks in
#      test/shell (pg_dump), then checks the server never restarted,
#   6. starts one without the preload and runs test/nopreload,
# and ends with the line `tests: N passed, N failed`.
#
#   test/run.sh                everything (`make test`)
#   test/run.sh unit           only the C unit tests (`make unit`; no server)
#   test/run.sh unit sanitize  the same under ASan and UBSan (`SANITIZE=1 make unit`)
#   test/run.sh installcheck   the pgTAP suites and shell checks against the
#                              server PGHOST/PGPORT/PGUSER point at, with
#                              pgformer installed (`make installcheck`)
# TESTS="10_recommend proxy test_decoder" runs only those suites (a name
# without folder or extension, or a path; `fuzz` for the fuzzer, `setup`
# for test/setup): `make test TESTS=...`.
set -u
mode=${1:-all}
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
passed=0
failed=0
skipped=0
log_dir=$root/build/test-logs
mkdir -p "$log_dir"

note() { printf '\n== %s\n' "$*"; }

# Whether a suite (a path) is among $TESTS; every suite when TESTS is empty.
selected() {
	local w name
	[ -z "${TESTS:-}" ] && return 0
	name=$(basename "$1"); name=${name%.*}
	for w in $TESTS; do
		case "$w" in "$1" | "$name" | "$(basename "$1")" | "$(dirname "$1")" | "$(basename "$(dirname "$1")")") return 0 ;; esac
	done
	return 1
}

# Adds the counts of one TAP stream (a file) to the totals: a skipped test
# ("ok N # SKIP why") is neither passed nor failed; a stream that exits
# non-zero with nothing failed, or runs fewer tests than its plan (first or
# last line) says, counts as failed.
count_tap() {
	local file=$1 rc=$2 p f s skips line plan missing=0
	p=$(grep -cE '^[[:space:]]*ok ' "$file")
	skips=$(grep -iE '^[[:space:]]*ok [0-9]+( -)? *# *skip' "$file")
	s=$(grep -c . <<<"$skips")
	f=$(grep -cE '^[[:space:]]*not ok ' "$file")
	plan=$(sed -n 's/^[[:space:]]*1\.\.\([0-9][0-9]*\).*/\1/p' "$file" | head -1)
	if [ -n "$plan" ] && [ $((p + f)) -lt "$plan" ]; then missing=$((plan - p - f)); fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$missing" -eq 0 ]; then missing=1; fi
	passed=$((passed + p - s))
	skipped=$((skipped + s))
	failed=$((failed + f + missing))
	[ "$s" -gt 0 ] && while IFS= read -r line; do echo "     skipped: ${line#"${line%%[![:space:]]*}"}"; done <<<"$skips"
	[ $((f + missing)) -eq 0 ]
}

finish() {
	echo
	[ "$skipped" -gt 0 ] && echo "skipped: $skipped (not counted as passed)"
	echo "tests: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# Runs the C unit tests, counting their TAP; with argument sanitize, the
# build with AddressSanitizer and UndefinedBehaviorSanitizer.
run_unit() {
	local bin out rc dir=test/unit/bin flags=() suffix="" tag=""
	if [ "${1:-}" = sanitize ]; then
		dir=build/sanitize/bin flags=(SANITIZE=1) suffix=" (sanitizers)" tag=-sanitize
	fi
	if ! make -j2 "${flags[@]}" unit-build unit-data >"$log_dir/unit-build$tag.log" 2>&1; then
		tail -40 "$log_dir/unit-build$tag.log"
		failed=$((failed + 1))
		return
	fi
	for bin in "$dir"/test_*; do
		selected "$bin" || continue
		out=$log_dir/$(basename "$bin")$tag.tap
		"$bin" >"$out" 2>&1
		rc=$?
		if count_tap "$out" "$rc"; then
			echo "ok   $(basename "$bin")$suffix ($(grep -cE '^ok ' "$out") tests)"
		else
			echo "FAIL $(basename "$bin")$suffix"
			grep -E '^not ok|^#' "$out" | head -20
		fi
	done
}

# Runs every .sh file of a folder (each prints TAP), counting its TAP.
run_scripts() {
	local folder=$1 t out
	for t in "$folder"/*.sh; do
		selected "$t" || continue
		out=$log_dir/$(basename "$folder")-$(basename "$t" .sh).tap
		"$t" >"$out" 2>&1
		if count_tap "$out" $?; then
			echo "ok   $t ($(grep -cE '^ok ' "$out") tests)"
		else
			echo "FAIL $t"
			grep -E '^not ok|^#|^Bail out' "$out" | head -20
		fi
	done
}

# Runs every .sql file of a folder with pg_prove against database $db.
run_pgtap() {
	local folder=$1 db=$2 t out rc
	for t in "$folder"/*.sql; do
		selected "$t" || continue
		out=$log_dir/$(basename "$folder")-$(basename "$t" .sql).tap
		pg_prove -v --ext .sql -d "$db" --set fixtures="$cluster/fixtures" "$t" >"$out" 2>&1
		rc=$?
		if count_tap "$out" "$rc"; then
			echo "ok   $t ($(grep -cE '^[[:space:]]*ok ' "$out") tests)"
		else
			echo "FAIL $t"
			grep -E 'not ok|#|Dubious|ERROR|Parse' "$out" | head -30
		fi
	done
}

# Starts a cluster in $cluster and prepares database pgformer_test.
start_cluster() {
	cluster=$(mktemp -d /tmp/pgformer-test.XXXXXX)
	chmod 755 "$cluster"
	if ! test/cluster.sh start "$cluster" "$@"; then
		cat "$cluster/initdb.log" "$cluster/log" 2>/dev/null | tail -20
		return 1
	fi
	# shellcheck disable=SC1091  # written by test/cluster.sh at run time
	. "$cluster/env"
	prepare_database
}

# Copies the fixtures where the server can read them ($cluster/fixtures)
# and creates database pgformer_test with pgTAP, dblink and pgformer.
prepare_database() {
	cp -r build/fixtures "$cluster/fixtures"
	cp demo/models/*.pgf "$cluster/fixtures/"
	cp -r test/fixtures/images "$cluster/fixtures/images"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$cluster/fixtures"
	psql -qX -c "DROP DATABASE IF EXISTS pgformer_test" >/dev/null 2>&1
	psql -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE pgformer_test" >/dev/null &&
		psql -qX -v ON_ERROR_STOP=1 -d pgformer_test \
			-c "CREATE EXTENSION pgtap; CREATE EXTENSION dblink; CREATE EXTENSION pgformer;" >/dev/null
}

stop_cluster() {
	test/cluster.sh stop "$cluster" || true
	cp "$cluster/log" "$log_dir/$1.server.log" 2>/dev/null
}

if [ "$mode" = unit ]; then
	note "unit tests${2:+ ($2)}"
	run_unit "${2:-}"
	finish
fi

# `make installcheck`: the suites against a running server with pgformer
# installed (test/sql and test/shell when it preloads pgformer, else
# test/nopreload).  Only the fixtures are built.
if [ "$mode" = installcheck ]; then
	note "fixtures"
	if ! make -j2 fixtures >"$log_dir/fixtures.log" 2>&1; then
		tail -40 "$log_dir/fixtures.log"
		failed=$((failed + 1)); finish
	fi
	note "pgTAP against the running server (${PGHOST:-default host}, database pgformer_test)"
	cluster=$(mktemp -d /tmp/pgformer-installcheck.XXXXXX)
	chmod 755 "$cluster"
	if ! prepare_database; then
		echo "FAIL could not create database pgformer_test with pgtap, dblink and pgformer"
		failed=$((failed + 1)); finish
	fi
	if psql -qAtX -c "SHOW shared_preload_libraries" | grep -qw pgformer; then
		run_pgtap test/sql pgformer_test
		FIXTURES="$cluster/fixtures" run_scripts test/shell
	else
		echo "(the server does not preload pgformer: test/nopreload only)"
		run_pgtap test/nopreload pgformer_test
	fi
	psql -qX -c "DROP DATABASE IF EXISTS pgformer_test" >/dev/null 2>&1
	rm -rf "$cluster"
	finish
fi

note "dependencies"
if ! tools/setup-deps.sh; then
	failed=$((failed + 1)); finish
fi
export OPENBLAS_NUM_THREADS=1

# The installer and the shell scripts themselves; TAP, no server.
note "setup"
run_scripts test/setup

note "build"
if ! make -j2 >"$log_dir/build.log" 2>&1; then
	tail -40 "$log_dir/build.log"
	failed=$((failed + 1)); finish
fi
install_cmd="make install"
[ "$(id -u)" -ne 0 ] && install_cmd="sudo make install"
if ! $install_cmd >"$log_dir/install.log" 2>&1; then
	tail -20 "$log_dir/install.log"
	failed=$((failed + 1)); finish
fi

note "unit tests"
run_unit

note "unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
run_unit sanitize

note "fuzzing the model-file reader (20 s)"
if ! selected test/fuzz; then
	echo "(not in TESTS)"
elif test/fuzz/run.sh 20 >"$log_dir/fuzz.log" 2>&1; then
	echo "ok   $(grep -E '^Done [0-9]+ runs' "$log_dir/fuzz.log" | head -1): no crash, leak or overread"
	passed=$((passed + 1))
else
	echo "FAIL the fuzzer found a problem (inputs in build/fuzz/)"
	tail -30 "$log_dir/fuzz.log"
	failed=$((failed + 1))
fi

note "pgTAP, pgformer preloaded"
if start_cluster; then
	started=$(psql -qAtX -c "SELECT pg_postmaster_start_time()")
	run_pgtap test/sql pgformer_test
	FIXTURES="$cluster/fixtures" run_scripts test/shell
	now=$(psql -qAtX -c "SELECT pg_postmaster_start_time()" 2>/dev/null)
	crashes=$(grep -cE 'terminated by signal|was terminated|PANIC|server process .* exited with exit code [^0]' "$cluster/log")
	if [ "$started" = "$now" ] && [ "$crashes" -eq 0 ]; then
		echo "ok   the server never restarted during the suite"
		passed=$((passed + 1))
	else
		echo "FAIL the server restarted or a backend died (see $log_dir/preload.server.log)"
		failed=$((failed + 1))
	fi
	stop_cluster preload
else
	failed=$((failed + 1))
fi

note "pgTAP, without the preload"
if start_cluster --no-preload; then
	run_pgtap test/nopreload pgformer_test
	stop_cluster nopreload
else
	failed=$((failed + 1))
fi

finish
