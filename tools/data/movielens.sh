#!/usr/bin/env bash
# Writes MovieLens latest-small (100,004 ratings, 671 users, 9,066 movies) as
# CSV from Debian's r-cran-dslabs package.  The GroupLens licence forbids
# redistribution, so the CSV is generated where it is needed, never committed.
#
#   tools/data/movielens.sh [OUT.csv]     (default: data/movielens.csv)
# Columns: movieId,title,year,genres,userId,rating,timestamp
# Needs r-base-core (Rscript); fetches r-cran-dslabs with apt-get download.
set -euo pipefail
out=${1:-data/movielens.csv}
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
work=$(mktemp -d); chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
command -v Rscript >/dev/null || { echo "movielens.sh: Rscript not found (apt-get install r-base-core)" >&2; exit 1; }
(cd "$work" && apt-get download r-cran-dslabs >/dev/null)
dpkg -x "$work"/r-cran-dslabs_*.deb "$work/x"
# shellcheck disable=SC2016  # R code: e$movielens is R, not a shell variable
Rscript -e 'args <- commandArgs(TRUE); e <- new.env(); invisible(lazyLoad(args[1], envir = e)); write.csv(e$movielens, args[2], row.names = FALSE)' \
	"$work/x/usr/lib/R/site-library/dslabs/data/Rdata" "$out.tmp"
mv "$out.tmp" "$out"
echo "movielens.sh: wrote $(($(wc -l < "$out") - 1)) ratings to $out" >&2
