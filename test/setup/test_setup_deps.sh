#!/usr/bin/env bash
# tools/setup-deps.sh against stand-ins for dpkg-query, apt-get, sudo and id,
# on a PATH that holds nothing else but bash and grep, so nothing real is
# ever installed: as root, as a user with sudo, as a user without sudo, with
# nothing missing, with apt-get failing and with everything missing.
# Prints TAP.  Needs no server and no root.
#
#   test/setup/test_setup_deps.sh [SCRIPT]     (default tools/setup-deps.sh)
#
# The stand-ins of a case live in CASE/bin and read CASE/uid (what `id -u`
# prints), CASE/missing (the packages dpkg-query reports as not installed,
# or * for all of them) and CASE/fail (the apt-get command that fails).
# apt-get appends one line per call to CASE/apt.log:
#   ARGS|DEBIAN_FRONTEND|how it was run ("direct" or "sudo OPTIONS")
# and the stand-in sudo one line per call to CASE/sudo.log.  Like sudo's
# env_reset, the stand-in sudo drops DEBIAN_FRONTEND unless given -E.
set -u
script=${1:-tools/setup-deps.sh}
case $script in /*) ;; *) script=$PWD/$script ;; esac
cd "$(dirname "$0")/../.." || exit 1
[ -f "$script" ] || { echo "Bail out! no script $script"; exit 1; }
env=$(command -v env)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The only real tools on a case's PATH: the shell (the stand-ins' shebang
# finds it through PATH) and grep.
mkdir "$tmp/tools"
for t in bash grep; do
	real=$(command -v "$t") || { echo "Bail out! no $t"; exit 1; }
	ln -s "$real" "$tmp/tools/$t"
done

n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; diag; fi; }
diag() {
	local f
	for f in out apt.log sudo.log; do
		[ -f "$case/$f" ] && sed "s/^/# $f: /" "$case/$f"
	done
}

# Sets up case NAME (in $case): uid, missing packages, "sudo" or "nosudo",
# the apt-get command that fails ("" for none).
new_case() {
	case=$tmp/$1
	mkdir -p "$case/bin"
	echo "$2" >"$case/uid"
	echo "$3" >"$case/missing"
	echo "$5" >"$case/fail"
	cat >"$case/bin/id" <<'SH'
#!/usr/bin/env bash
[ "$*" = -u ] || { echo "id stand-in: only -u" >&2; exit 1; }
read -r uid <"${0%/*}/../uid"
echo "$uid"
SH
	cat >"$case/bin/dpkg-query" <<'SH'
#!/usr/bin/env bash
# dpkg-query -W -f='${Status}' PACKAGE
pkg=${!#}
read -r -a missing <"${0%/*}/../missing"
for m in "${missing[@]}"; do
	if [ "$m" = "*" ] || [ "$m" = "$pkg" ]; then
		echo "dpkg-query: no packages found matching $pkg" >&2
		exit 1
	fi
done
printf 'install ok installed'
SH
	cat >"$case/bin/apt-get" <<'SH'
#!/usr/bin/env bash
here=${0%/*}/..
echo "$*|${DEBIAN_FRONTEND-unset}|${STAND_IN_SUDO-direct}" >>"$here/apt.log"
read -r fail <"$here/fail"
for a in "$@"; do
	if [ -n "$fail" ] && [ "$a" = "$fail" ]; then
		echo "E: stand-in apt-get: $fail failed" >&2
		exit 100
	fi
done
SH
	if [ "$4" = sudo ]; then
		cat >"$case/bin/sudo" <<'SH'
#!/usr/bin/env bash
opts=()
while [ $# -gt 0 ]; do
	case $1 in
	--) shift; break ;;
	-*) opts+=("$1"); shift ;;
	*) break ;;
	esac
done
echo "${opts[*]} $*" >>"${0%/*}/../sudo.log"
keep=no
for o in "${opts[@]}"; do [ "$o" = -E ] && keep=yes; done
[ "$keep" = yes ] || unset DEBIAN_FRONTEND
export STAND_IN_SUDO="sudo ${opts[*]}"
exec "$@"
SH
	fi
	chmod +x "$case"/bin/*
}

# Runs the script in $case, with nothing in its environment but PATH and
# HOME (so no DEBIAN_FRONTEND of the caller leaks in); sets rc.
run_case() {
	"$env" -i PATH="$case/bin:$tmp/tools" HOME="$case" "$tmp/tools/bash" "$script" >"$case/out" 2>&1
	rc=$?
}

# Helpers over $case/apt.log.
apt_calls() { if [ -f "$case/apt.log" ]; then grep -c '' "$case/apt.log"; else echo 0; fi; }
# The field (1 args, 2 DEBIAN_FRONTEND, 3 how) of apt-get call number N.
apt_field() {
	local line a d h i=0
	while IFS= read -r line; do
		i=$((i + 1))
		[ "$i" = "$1" ] || continue
		IFS='|' read -r a d h <<<"$line"
		case $2 in 1) echo "$a" ;; 2) echo "$d" ;; 3) echo "$h" ;; esac
	done <"$case/apt.log"
}
# The packages apt-get call N was asked to install (the words after
# "install" that are not options), one per line.
install_pkgs() {
	local w seen=no
	for w in $(apt_field "$1" 1); do
		if [ "$seen" = yes ] && [ "${w#-}" = "$w" ]; then echo "$w"; fi
		[ "$w" = install ] && seen=yes
	done
}
# True when apt-get call N is COMMAND (update, install).
is_call() { [ "$(apt_calls)" -ge "$1" ] && [[ " $(apt_field "$1" 1) " == *" $2 "* ]]; }
# True when there are apt-get calls and field F of each matches PATTERN.
every_call() {
	local i
	[ "$(apt_calls)" -gt 0 ] || return 1
	for ((i = 1; i <= $(apt_calls); i++)); do
		# shellcheck disable=SC2254  # $2 is a pattern, on purpose
		case $(apt_field "$i" "$1") in $2) ;; *) return 1 ;; esac
	done
}
update_then_install() { [ "$(apt_calls)" = 2 ] && is_call 1 update && is_call 2 install; }
only_libpng() { [ "$(install_pkgs 2)" = libpng-dev ]; }
quiet_install() { every_call 2 noninteractive && is_call 2 -y; }
untouched() { [ "$(apt_calls)" = 0 ] && [ ! -e "$case/sudo.log" ]; }
failed_in_install() { [ "$rc" -ne 0 ] && [ "$(apt_calls)" = 2 ] && is_call 2 install; }
stopped_before_install() { [ "$rc" -ne 0 ] && [ "$(apt_calls)" = 1 ]; }
installs_shellcheck() { [ "$rc" -eq 0 ] && update_then_install && install_pkgs 2 | grep -qx shellcheck; }

echo "1..20"

# (a) as root, one package missing
new_case root 0 libpng-dev sudo ""
run_case
[ "$rc" -eq 0 ]; ok $? "as root: exits 0"
update_then_install; ok $? "as root: apt-get update, then apt-get install"
only_libpng; ok $? "as root: install gets only the missing package"
quiet_install; ok $? "as root: install -y, both with DEBIAN_FRONTEND=noninteractive"
every_call 3 direct; ok $? "as root: apt-get runs directly"
[ ! -e "$case/sudo.log" ]; ok $? "as root: sudo is never used, though it is there"

# (b) a user with sudo
new_case user 1000 libpng-dev sudo ""
run_case
[ "$rc" -eq 0 ]; ok $? "with sudo: exits 0"
update_then_install; ok $? "with sudo: apt-get update, then apt-get install"
every_call 3 "sudo*-E*"; ok $? "with sudo: both run through sudo -E"
every_call 2 noninteractive; ok $? "with sudo: DEBIAN_FRONTEND=noninteractive gets through sudo"
only_libpng; ok $? "with sudo: install gets only the missing package"

# (c) a user without sudo
new_case nosudo 1000 libpng-dev nosudo ""
"$env" -i PATH="$case/bin:$tmp/tools" "$tmp/tools/bash" -c '! command -v sudo'
ok $? "without sudo: there is no sudo on the case's PATH"
run_case
[ "$rc" -ne 0 ]; ok $? "without sudo: exits non-zero"
grep -q 'libpng-dev' "$case/out"; ok $? "without sudo: the message names the missing package"
[ "$(apt_calls)" = 0 ]; ok $? "without sudo: apt-get is never called"

# (d) nothing missing
new_case complete 1000 "" sudo ""
run_case
[ "$rc" -eq 0 ]; ok $? "nothing missing: exits 0"
untouched; ok $? "nothing missing: neither apt-get nor sudo is called"

# (e) apt-get failing
new_case install-fails 0 libpng-dev sudo install
run_case
failed_in_install; ok $? "apt-get install fails: exits non-zero"
new_case update-fails 0 libpng-dev sudo update
run_case
stopped_before_install; ok $? "apt-get update fails: exits non-zero without installing"

# (f) everything missing: one install of the whole list, shellcheck in it
new_case bare 0 "*" sudo ""
run_case
installs_shellcheck; ok $? "everything missing: one install, shellcheck among its packages"

exit $failed
