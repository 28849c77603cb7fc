#!/usr/bin/env bash
# The whole test suite (`make test`):
#   1. installs missing Debian packages (tools/setup-deps.sh),
#   2. runs the checks of the setup itself in test/setup (no server): the
#      installer against stand-ins for apt-get and sudo, and shellcheck on
#      every shell script,
#   3. builds and installs the extension,
#   4. runs the C unit tests (TAP, against PyTorch goldens) and fuzzes the
#      model-file reader for 20 seconds,
#   5. starts a throwaway cluster with pgformer preloaded and runs the pgTAP
#      suites in test/sql with pg_prove and the client-side checks in
#      test/shell (pg_dump), then checks the server never restarted,
#   6. starts one without the preload and runs test/nopreload,
# and ends with the line `tests: N passed, N failed`.
#
#   test/run.sh          everything
#   test/run.sh unit     only the C unit tests (`make unit`; no server)
set -u
mode=${1:-all}
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
passed=0
failed=0
log_dir=$root/build/test-logs
mkdir -p "$log_dir"

note() { printf '\n== %s\n' "$*"; }

# Adds the counts of one TAP stream (a file) to the totals.
count_tap() {
	local file=$1 rc=$2 p f plan missing=0
	p=$(grep -cE '^[[:space:]]*ok ' "$file")
	f=$(grep -cE '^[[:space:]]*not ok ' "$file")
	plan=$(sed -n 's/^[[:space:]]*1\.\.\([0-9][0-9]*\).*/\1/p' "$file" | head -1)
	if [ -n "$plan" ] && [ $((p + f)) -lt "$plan" ]; then missing=$((plan - p - f)); fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$missing" -eq 0 ]; then missing=1; fi
	passed=$((passed + p))
	failed=$((failed + f + missing))
	[ $((f + missing)) -eq 0 ]
}

finish() {
	echo
	echo "tests: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# Runs the C unit tests, counting their TAP.
run_unit() {
	local bin out rc
	if ! make -j2 unit-build unit-data >"$log_dir/unit-build.log" 2>&1; then
		tail -40 "$log_dir/unit-build.log"
		failed=$((failed + 1))
		return
	fi
	for bin in test/unit/bin/test_*; do
		out=$log_dir/$(basename "$bin").tap
		"$bin" >"$out" 2>&1
		rc=$?
		if count_tap "$out" "$rc"; then
			echo "ok   $(basename "$bin") ($(grep -cE '^ok ' "$out") tests)"
		else
			echo "FAIL $(basename "$bin")"
			grep -E '^not ok|^#' "$out" | head -20
		fi
	done
}

# Runs every .sh file of a folder (each prints TAP), counting its TAP.
run_scripts() {
	local folder=$1 t out
	for t in "$folder"/*.sh; do
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

if [ "$mode" = unit ]; then
	note "unit tests"
	run_unit
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

note "fuzzing the model-file reader (20 s)"
if test/fuzz/run.sh 20 >"$log_dir/fuzz.log" 2>&1; then
	echo "ok   $(grep -E '^Done [0-9]+ runs' "$log_dir/fuzz.log" | head -1): no crash, leak or overread"
	passed=$((passed + 1))
else
	echo "FAIL the fuzzer found a problem (inputs in build/fuzz/)"
	tail -30 "$log_dir/fuzz.log"
	failed=$((failed + 1))
fi

# Runs every .sql file of a folder with pg_prove against database $db.
run_pgtap() {
	local folder=$1 db=$2 t out rc
	for t in "$folder"/*.sql; do
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
	cp -r build/fixtures "$cluster/fixtures"
	cp demo/models/*.pgf "$cluster/fixtures/"
	cp -r test/fixtures/images "$cluster/fixtures/images"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$cluster/fixtures"
	psql -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE pgformer_test" >/dev/null &&
		psql -qX -v ON_ERROR_STOP=1 -d pgformer_test \
			-c "CREATE EXTENSION pgtap; CREATE EXTENSION dblink; CREATE EXTENSION pgformer;" >/dev/null
}

stop_cluster() {
	test/cluster.sh stop "$cluster" || true
	cp "$cluster/log" "$log_dir/$1.server.log" 2>/dev/null
}

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
