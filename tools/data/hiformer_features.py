"""The features of the MovieLens Hiformer ranker,
computed point in time from data/movielens.csv exactly as the SQL binding
queries in tools/data/hiformer_features.sql compute them on a server.

What it owns:
  - FEATURES: every feature's name, kind, group, vocabulary and transform,
    in the order the model reads them (categorical features give the token
    order, dense features the columns of the dense block);
  - load_movielens(): the CSV as arrays (the tables ratings and movies);
  - PointInTime: user and item features as of any time t from the ratings
    strictly before t (no leakage: an example at time t never sees its own
    rating nor anything later, ratings with the same timestamp included);
  - examples(): every rating as a training example (features as of its own
    timestamp, labels like = rating >= 4 and love = rating >= 4.5) and the
    time split (the latest 20% of events held out);
  - fit_features(): normalisation constants and defaults from training rows;
  - sql_queries(): the queries of hiformer_features.sql by binding name;
  - --check-sql: loads the CSV into a scratch schema on a live server (psql,
    the usual PG* environment variables), runs the three queries with their
    "as of" time set to sampled held-out events and compares every value with
    this module's (relative tolerance 1e-9).

    python3 -m tools.data.hiformer_features --check-sql [--samples 300]
"""
import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from tools.models import hiformer as hf

_HERE = os.path.dirname(os.path.abspath(__file__))

SQL_PATH = os.path.join(_HERE, "hiformer_features.sql")
CSV_PATH = os.path.join(_HERE, "..", "..", "data", "movielens.csv")

GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX",
          "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western", "(no genres listed)"]
GENRE_CODE = {g: i + 1 for i, g in enumerate(GENRES)}         # 0 = unknown
USER_GENRES = GENRES[:-1]       # per-genre user shares and like rates
YEAR_LOW, YEAR_HIGH, YEAR_BUCKETS = 1920, 2020, 10            # width_bucket
YEAR_LABELS = (["unknown->0", "<1920"] +
               ["%d-%d" % (y, y + 9) for y in range(YEAR_LOW, YEAR_HIGH, 10)] +
               [">=2020"])[1:]
HOLDOUT_FRACTION = 0.2
CLIP = 5.0                      # normalised dense values are clipped to +-5


def genre_short(g):
    return "none" if g.startswith("(") else g.lower().replace("-", "_")


def _feature_defs():
    C, D, M = hf.CATEGORICAL, hf.DENSE, hf.MULTI_HOT
    defs = [
        # (name, kind, group, vocab, log1p, categories)
        ("u_top_genre", C, "user", len(GENRES) + 1, False, GENRES),
        ("ctx_hour", C, "context", 25, False, ["%02d h UTC" % h for h in range(24)]),
        ("ctx_weekday", C, "context", 8, False,
         ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        ("i_year_bucket", C, "item", YEAR_BUCKETS + 3, False, YEAR_LABELS),
        ("i_genres", M, "item", len(GENRES) + 1, False, GENRES),
        ("u_n_ratings", D, "user", 0, True, []),
        ("u_mean_rating", D, "user", 0, False, []),
        ("u_std_rating", D, "user", 0, False, []),
        ("u_frac_liked", D, "user", 0, False, []),
        ("u_days_span", D, "user", 0, True, []),
    ]
    defs += [("u_share_" + genre_short(g), D, "user", 0, False, []) for g in USER_GENRES]
    defs += [("u_like_" + genre_short(g), D, "user", 0, False, []) for g in USER_GENRES]
    defs += [
        ("i_n_ratings", D, "item", 0, True, []),
        ("i_mean_rating", D, "item", 0, False, []),
        ("i_frac_liked", D, "item", 0, False, []),
        ("i_year", D, "item", 0, False, []),
    ]
    return defs


FEATURE_DEFS = _feature_defs()
FEATURE_NAMES = [d[0] for d in FEATURE_DEFS]
TASKS = ["like", "love"]            # rating >= 4, rating >= 4.5


# ---- data --------------------------------------------------------------------

class MovieLens:
    """ratings: user, movie, rating, ts (arrays, one entry per rating);
    movies: movie id -> (year or None, genres string)."""

    def __init__(self, path=CSV_PATH):
        users, items, ratings, stamps = [], [], [], []
        self.movies = {}
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                m = int(row["movieId"])
                year = int(row["year"]) if row["year"] not in ("", "NA") else None
                self.movies.setdefault(m, (year, row["genres"], row["title"]))
                users.append(int(row["userId"]))
                items.append(m)
                ratings.append(float(row["rating"]))
                stamps.append(int(row["timestamp"]))
        self.user = np.array(users, dtype=np.int64)
        self.item = np.array(items, dtype=np.int64)
        self.rating = np.array(ratings, dtype=np.float64)
        self.ts = np.array(stamps, dtype=np.int64)
        ids = np.array(sorted(self.movies), dtype=np.int64)
        self.movie_ids = ids
        self.movie_genre_mat = np.zeros((len(ids), len(GENRES)), dtype=np.int64)
        self.movie_codes = []
        self.movie_year = np.full(len(ids), np.nan)
        for k, m in enumerate(ids):
            year, genres, _ = self.movies[m]
            codes = [GENRE_CODE.get(g, 0) for g in genres.split("|")] if genres else []
            self.movie_codes.append(codes)
            for c in codes:
                if c:
                    self.movie_genre_mat[k, c - 1] = 1
            if year is not None:
                self.movie_year[k] = year

    def movie_rows(self, movie_ids):
        """Rows of the movie arrays for ids (-1 where unknown)."""
        pos = np.searchsorted(self.movie_ids, movie_ids)
        pos = np.minimum(pos, len(self.movie_ids) - 1)
        return np.where(self.movie_ids[pos] == movie_ids, pos, -1)


def year_bucket(year):
    """coalesce(width_bucket(year, 1920, 2020, 10) + 1, 0)."""
    out = np.zeros(len(year), dtype=np.int64)
    ok = np.isfinite(year)
    y = year[ok]
    b = np.floor((y - YEAR_LOW) * YEAR_BUCKETS / (YEAR_HIGH - YEAR_LOW)).astype(np.int64) + 1
    b = np.where(y < YEAR_LOW, 0, np.where(y >= YEAR_HIGH, YEAR_BUCKETS + 1, b))
    out[ok] = b + 1
    return out


class _Prefix:
    """Exclusive prefix sums of per-rating values grouped by a key and sorted
    by time, answering "sum over the key's ratings with ts < t"."""

    def __init__(self, key, ts, values):
        order = np.lexsort((ts, key))
        self.comp = (key[order] << 32) + ts[order]
        self.ts = ts[order]
        self.sums = {}
        for name, v in values.items():
            v = v[order]
            z = np.zeros((1,) + v.shape[1:], dtype=v.dtype)
            self.sums[name] = np.concatenate([z, np.cumsum(v, axis=0)])

    def span(self, keys, times):
        lo = np.searchsorted(self.comp, keys << 32, side="left")
        hi = np.searchsorted(self.comp, (keys << 32) + times, side="left")
        return lo, hi

    def total(self, name, lo, hi):
        s = self.sums[name]
        return s[hi] - s[lo]


class PointInTime:
    """User and item features as of arbitrary times."""

    def __init__(self, data: MovieLens):
        self.data = data
        rows = data.movie_rows(data.item)
        genre = data.movie_genre_mat[rows]                      # [n, 20]
        half = np.rint(data.rating * 2).astype(np.int64)        # exact sums
        liked = (data.rating >= 4).astype(np.int64)
        one = np.ones(len(half), dtype=np.int64)
        self.by_user = _Prefix(data.user, data.ts, {
            "n": one, "s1": half, "s2": half * half, "liked": liked,
            "genre": genre, "genre_liked": genre * liked[:, None]})
        self.by_item = _Prefix(data.item, data.ts, {
            "n": one, "s1": half, "liked": liked})

    def user(self, users, times):
        users = np.asarray(users, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        p = self.by_user
        lo, hi = p.span(users, times)
        n = p.total("n", lo, hi).astype(np.float64)
        s1 = p.total("s1", lo, hi).astype(np.float64)
        s2 = p.total("s2", lo, hi).astype(np.float64)
        liked = p.total("liked", lo, hi).astype(np.float64)
        genre = p.total("genre", lo, hi).astype(np.float64)
        genre_liked = p.total("genre_liked", lo, hi).astype(np.float64)
        has = n > 0
        nz = np.where(has, n, 1.0)
        nan = np.nan
        out = {"u_n_ratings": n,
               "u_mean_rating": np.where(has, s1 / nz / 2, nan),
               "u_std_rating": np.where(
                   has, np.sqrt(np.maximum(n * s2 - s1 * s1, 0)) / nz / 2, nan),
               "u_frac_liked": np.where(has, liked / nz, nan)}
        first = np.where(has, p.ts[np.minimum(lo, len(p.ts) - 1)], 0)
        last = np.where(has, p.ts[np.maximum(hi - 1, 0)], 0)
        out["u_days_span"] = np.where(has, (last - first) / 86400.0, nan)
        gsum = genre.sum(1)
        out["u_top_genre"] = np.where(gsum > 0, np.argmax(genre, 1) + 1, 0)
        gz = np.where(genre > 0, genre, 1.0)
        for j, g in enumerate(USER_GENRES):
            s = genre_short(g)
            out["u_share_" + s] = np.where(has, genre[:, j] / nz, nan)
            out["u_like_" + s] = np.where(genre[:, j] > 0, genre_liked[:, j] / gz[:, j], nan)
        return out

    def item(self, items, times):
        items = np.asarray(items, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        p = self.by_item
        lo, hi = p.span(items, times)
        n = p.total("n", lo, hi).astype(np.float64)
        s1 = p.total("s1", lo, hi).astype(np.float64)
        liked = p.total("liked", lo, hi).astype(np.float64)
        has = n > 0
        nz = np.where(has, n, 1.0)
        rows = self.data.movie_rows(items)
        year = np.where(rows >= 0, self.data.movie_year[np.maximum(rows, 0)], np.nan)
        width = max([len(c) for c in self.data.movie_codes] + [1])
        genres = np.full((len(items), width), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            if r >= 0:
                codes = self.data.movie_codes[r]
                genres[i, :len(codes)] = codes
        return {"i_n_ratings": n,
                "i_mean_rating": np.where(has, s1 / nz / 2, np.nan),
                "i_frac_liked": np.where(has, liked / nz, np.nan),
                "i_year": year,
                "i_year_bucket": year_bucket(year),
                "i_genres": genres,
                "known": rows >= 0}


def context(times):
    """ctx_hour = UTC hour + 1 (1..24), ctx_weekday = ISO weekday (1..7)."""
    times = np.asarray(times, dtype=np.int64)
    hour = (times // 3600) % 24 + 1
    weekday = ((times // 86400) + 3) % 7 + 1        # 1970-01-01 was a Thursday
    return {"ctx_hour": hour, "ctx_weekday": weekday}


# ---- examples and the split --------------------------------------------------

class Examples:
    """Every rating as an example, features as of its own timestamp."""

    def __init__(self, data: MovieLens):
        pit = PointInTime(data)
        self.columns = {}
        self.columns.update(pit.user(data.user, data.ts))
        self.columns.update(pit.item(data.item, data.ts))
        self.columns.update(context(data.ts))
        self.labels = np.stack([data.rating >= 4.0, data.rating >= 4.5], 1).astype(np.float32)
        self.ts = data.ts
        self.cutoff = int(np.quantile(data.ts, 1.0 - HOLDOUT_FRACTION))
        self.train = np.nonzero(data.ts < self.cutoff)[0]
        self.test = np.nonzero(data.ts >= self.cutoff)[0]

    def subset(self, idx):
        return {k: v[idx] for k, v in self.columns.items() if k in FEATURE_NAMES}


def fit_features(columns):
    """[hf.Feature] with mean/std of the transformed non-missing training
    values; a missing value defaults to the raw value whose transform is the
    mean (so its normalised value is 0); normalised values are clipped to
    +-CLIP (shares of rare genres have small deviations and long tails)."""
    out = []
    for name, kind, group, vocab, log1p, cats in FEATURE_DEFS:
        f = hf.Feature(name=name, kind=kind, group=group, vocab_size=vocab,
                       log1p=log1p, categories=list(cats))
        if kind == hf.DENSE:
            x = np.asarray(columns[name], dtype=np.float64)
            x = x[np.isfinite(x)]
            v = np.log1p(np.maximum(x, 0)) if log1p else x
            f.mean = float(v.mean()) if len(v) else 0.0
            f.std = float(max(v.std(), 1e-3)) if len(v) else 1.0
            f.default = float(np.expm1(f.mean)) if log1p else f.mean
            f.clip = CLIP
        out.append(f)
    return out


# ---- the SQL side --------------------------------------------------------------

def sql_queries(path=SQL_PATH):
    """binding name -> query text (without the trailing semicolon)."""
    text = open(path).read()
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    out = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        out[name] = body.strip().rstrip(";").strip()
    return out


ASOF_SERVING = 'SELECT max("timestamp") + 1 AS t FROM ratings'


def as_of(query, t):
    """The query with its "as of" time (and now()) set to unix time t."""
    if ASOF_SERVING not in query and "now()" not in query:
        raise ValueError("query has no as-of marker")
    return (query.replace(ASOF_SERVING, "SELECT %d::bigint AS t" % t)
            .replace("now()", "to_timestamp(%d)" % t))


def _psql(script):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t",
                        "-P", "null=NULL"],
                       input=script, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("psql failed: " + r.stderr.strip())
    return r.stdout


def _parse(value):
    if value == "NULL":
        return None
    if value.startswith("{"):
        return [int(v) for v in value.strip("{}").split(",") if v]
    return float(value)


def _same(a, b):
    """SQL value a vs Python value b."""
    if isinstance(b, np.ndarray):
        b = [int(v) for v in b if v != -1]
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    b = float(b)
    if a is None:
        return math.isnan(b)
    if math.isnan(b):
        return False
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def check_sql(samples, seed=0):
    data = MovieLens()
    ex = Examples(data)
    pit = PointInTime(data)
    rng = np.random.default_rng(seed)
    pick = rng.choice(ex.test, size=min(samples, len(ex.test)), replace=False)
    # Include users and items without history and ids the tables lack.
    users = list(data.user[pick]) + [999999]
    items = list(data.item[pick]) + [999999999]
    times = list(data.ts[pick]) + [int(data.ts.max()) + 1]
    q = sql_queries()
    with tempfile.TemporaryDirectory() as tmp:
        movies_csv = os.path.join(tmp, "movies.csv")
        ratings_csv = os.path.join(tmp, "ratings.csv")
        with open(movies_csv, "w", newline="") as f:
            w = csv.writer(f)
            for m in data.movie_ids:
                year, genres, title = data.movies[m]
                w.writerow([m, title, "" if year is None else year, genres])
        with open(ratings_csv, "w", newline="") as f:
            w = csv.writer(f)
            for row in zip(data.user, data.item, data.rating, data.ts):
                w.writerow(row)
        os.chmod(tmp, 0o755)
        script = ["DROP SCHEMA IF EXISTS hiformer_check CASCADE;",
                  "CREATE SCHEMA hiformer_check;",
                  "SET search_path = hiformer_check;",
                  "CREATE TABLE movies (movieid int PRIMARY KEY, title text, year int, genres text);",
                  "CREATE TABLE ratings (userid int, movieid int, rating real, \"timestamp\" bigint);",
                  "\\copy movies FROM '%s' WITH (FORMAT csv)" % movies_csv,
                  "\\copy ratings FROM '%s' WITH (FORMAT csv)" % ratings_csv,
                  "CREATE INDEX ON ratings (userid); CREATE INDEX ON ratings (movieid);",
                  "ANALYZE;"]
        for k, (u, i, t) in enumerate(zip(users, items, times)):
            script.append("SELECT 'u%d', x.* FROM (%s) x;"
                          % (k, as_of(q["user_features"], t).replace("$1", str(u))))
            script.append("SELECT 'i%d', x.* FROM (%s) x;"
                          % (k, as_of(q["item_features"], t)
                             .replace("$1", "ARRAY[%d]::bigint[]" % i)))
            script.append("SELECT 'c%d', x.* FROM (%s) x;"
                          % (k, as_of(q["context_features"], t)))
        script.append("DROP SCHEMA hiformer_check CASCADE;")
        started = time.time()
        out = _psql("\n".join(script) + "\n")
    user_names = [d[0] for d in FEATURE_DEFS if d[2] == "user"]
    item_names = ["item_id"] + [n for n in ("i_year_bucket", "i_genres", "i_n_ratings",
                                            "i_mean_rating", "i_frac_liked", "i_year")]
    ctx_names = ["ctx_hour", "ctx_weekday"]
    order = {"u": [n for n in _select_names(q["user_features"])],
             "i": _select_names(q["item_features"]),
             "c": _select_names(q["context_features"])}
    if sorted(order["u"]) != sorted(user_names) or order["i"] != item_names \
            or order["c"] != ctx_names:
        raise SystemExit("the SQL columns differ from the feature list")
    expect_u = pit.user(users, times)
    expect_i = pit.item(items, times)
    expect_c = context(times)
    got = {"u": {}, "i": {}, "c": {}}
    for line in out.splitlines():
        cells = line.split("\t")
        got[cells[0][0]][int(cells[0][1:])] = [_parse(v) for v in cells[1:]]
    bad = 0
    compared = 0
    for k in range(len(users)):
        for kind, expect in (("u", expect_u), ("c", expect_c)):
            row = got[kind].get(k)
            if row is None:
                print("missing %s row for sample %d" % (kind, k))
                bad += 1
                continue
            for name, value in zip(order[kind], row):
                compared += 1
                if not _same(value, expect[name][k]):
                    bad += 1
                    if bad < 20:
                        print("sample %d (user %d, t %d) %s: sql %r, python %r"
                              % (k, users[k], times[k], name, value, expect[name][k]))
        row = got["i"].get(k)
        if row is None:
            if expect_i["known"][k]:
                print("missing item row for sample %d" % k)
                bad += 1
            continue
        for name, value in zip(order["i"][1:], row[1:]):
            compared += 1
            if not _same(value, expect_i[name][k]):
                bad += 1
                if bad < 20:
                    print("sample %d (item %d, t %d) %s: sql %r, python %r"
                          % (k, items[k], times[k], name, value, expect_i[name][k]))
    print("check-sql: %d events, %d values compared, %d differ (%.1f s in psql)"
          % (len(users), compared, bad, time.time() - started))
    return bad == 0


def _select_names(query):
    """Column aliases of the outermost SELECT, in order."""
    last = query[query.rfind("\nSELECT "):] if "\nSELECT " in query else query
    return re.findall(r"\bAS (\w+),?\s*$", last, flags=re.M)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check-sql", action="store_true")
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    if args.check_sql:
        sys.exit(0 if check_sql(args.samples) else 1)
    data = MovieLens()
    ex = Examples(data)
    print("%d ratings, %d train, %d held out (cutoff %s UTC)"
          % (len(data.ts), len(ex.train), len(ex.test),
             time.strftime("%Y-%m-%d %H:%M", time.gmtime(ex.cutoff))))
    feats = fit_features(ex.subset(ex.train))
    for f in feats:
        print("  %-22s %-10s %-8s vocab %-3d mean %9.4f std %8.4f default %9.4f%s"
              % (f.name, f.kind, f.group, f.vocab_size, f.mean, f.std, f.default,
                 " log1p" if f.log1p else ""))


if __name__ == "__main__":
    main()
