#!/usr/bin/env bash
# Installs the Debian packages pgformer builds, tests and demos with, when
# any is missing.  Needs root (or sudo).  Safe to run again: it does nothing
# when everything is present.
#
#   tools/setup-deps.sh            build + test + demo packages
set -euo pipefail

packages=(
	# build
	make gcc pkg-config postgresql-15 postgresql-server-dev-15
	libopenblas-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	zlib1g-dev libpng-dev libjpeg62-turbo-dev
	# tests: pgTAP, pg_prove, pg_cron and PL/Proxy (the recipes and
	# pgformer_proxy), the PyTorch reference, fuzzing, shell lint
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron
	postgresql-15-plproxy
	python3 python3-torch python3-numpy python3-protobuf python3-pil python3-regex
	clang libclang-rt-14-dev shellcheck
	# data for the demo models (MovieLens through R, Fashion-MNIST)
	r-base-core dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# What runs apt-get: nothing in front as root, else sudo keeping the
# environment (DEBIAN_FRONTEND).
as_root=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "setup-deps: need root to install: ${missing[*]}" >&2; exit 1; }
	as_root=(sudo -E)
fi
echo "setup-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
"${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
