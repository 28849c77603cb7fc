# Sourced by tests and benchmarks that need a cluster of their own:
#   . test/own_cluster.sh; own_cluster NAME
# starts a throwaway cluster in a new folder /tmp/pgformer-NAME.XXXXXX
# ($dir; data in $dir/data, log in $dir/log), points the client at it, and
# stops and removes it when the script exits.  Prints "Bail out!" and
# exits when the cluster does not start.
# shellcheck shell=bash
own_cluster() {
	dir=$(mktemp -d "/tmp/pgformer-$1.XXXXXX")
	chmod 755 "$dir"
	if ! test/cluster.sh start "$dir" >/dev/null; then
		echo "Bail out! could not start a cluster in $dir"
		exit 1
	fi
	trap 'test/cluster.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
	# shellcheck disable=SC1091  # written by test/cluster.sh
	. "$dir/env"
}
