#!/usr/bin/env python3
"""fintrec_bench.py: the FinTRec recommender on the same weights in ONNX
Runtime, in PyTorch and in pgformer (its C model called directly, and
recommend() / recommend_batch() through SQL), in one run.

    .venv/bin/python -m bench.fintrec_bench [MODEL.pgf] [--repeats N]

The venv keeps Debian's torch and numpy and adds the peer from PyPI:
    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install onnxruntime==1.20.1 onnx && .venv/bin/pip uninstall -y numpy
(pip brings numpy 2, which Debian's torch 1.13 cannot use; without it the
venv sees the system's numpy 1.24).  Requests: every MovieLens user's history
before their last rating, at the time of that rating (the evaluation
protocol of tools/eval/fintrec.py); k = 10, seen items excluded.  Every
engine runs on one thread.  Model time only: ONNX Runtime's session.run and
PyTorch's forward are timed on inputs prepared beforehand (as pgformer's C
figures exclude reading the events); the SQL figures are whole calls,
events query included.  Prints each figure and the ratio to ONNX Runtime.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tools import pgf  # noqa: E402
from tools.data.movielens import MovieLens  # noqa: E402
from tools.export.fintrec import load_pgf  # noqa: E402
from tools.export.onnx_fintrec import Scorer, export, feeds  # noqa: E402

K = 10
BATCH = 64


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def requests(data):
    """(user id, Sequence, newest-first events) for every user's test request."""
    out = []
    for u in data.users:
        seq, _ = data.request(u, "test")
        j = len(seq.rows)
        out.append((u["user"], seq, u["ids"][:j][::-1], u["times"][:j][::-1], u["types"][:j][::-1]))
    return out


def write_requests(reqs, path):
    w = pgf.Writer("fintrec_requests", "bench")
    offsets = np.cumsum([0] + [len(r[2]) for r in reqs]).astype(np.int64)
    w.add("ev.offsets", offsets, pgf.I64)
    w.add("ev.items", np.concatenate([r[2] for r in reqs]).astype(np.int64), pgf.I64)
    w.add("ev.times", np.concatenate([r[3] for r in reqs]).astype(np.int64), pgf.I64)
    w.add("ev.types", np.concatenate([r[4] for r in reqs]).astype(np.int32), pgf.I32)
    w.add("case.now", np.array([r[1].now for r in reqs], np.int64), pgf.I64)
    w.write(path)


def time_calls(fn, args_list, repeats):
    lat = []
    for _ in range(repeats):
        for a in args_list:
            t = time.perf_counter()
            fn(a)
            lat.append((time.perf_counter() - t) * 1e6)
    return statistics.median(lat), percentile(lat, 0.99)


def bench_onnx(model, seqs, repeats, workdir):
    import onnxruntime as ort
    path = os.path.join(workdir, "fintrec.onnx")
    names = export(model, path, K)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in sess.get_inputs()}

    def prepared(batch):
        f = feeds(model, batch)
        return {k: v for k, v in f.items() if k in inputs}

    singles = [prepared([s]) for s in seqs]
    for f in singles[:20]:
        sess.run(None, f)
    med, p99 = time_calls(lambda f: sess.run(None, f), singles, repeats)
    batches = [prepared(seqs[i:i + BATCH]) for i in range(0, len(seqs), BATCH)]
    t = time.perf_counter()
    for _ in range(repeats):
        for f in batches:
            sess.run(None, f)
    throughput = len(seqs) * repeats / (time.perf_counter() - t)
    return med, p99, throughput, names


@torch.no_grad()
def bench_torch(model, seqs, repeats, names):
    torch.set_num_threads(1)
    scorer = Scorer(model.float().eval(), K)

    def prepared(batch):
        f = feeds(model, batch)
        return [torch.from_numpy(f[n]) for n in names]

    singles = [prepared([s]) for s in seqs]
    for a in singles[:20]:
        scorer(*a)
    med, p99 = time_calls(lambda a: scorer(*a), singles, repeats)
    batches = [prepared(seqs[i:i + BATCH]) for i in range(0, len(seqs), BATCH)]
    t = time.perf_counter()
    for _ in range(repeats):
        for a in batches:
            scorer(*a)
    return med, p99, len(seqs) * repeats / (time.perf_counter() - t)


def bench_c(model_path, req_path, repeats):
    binary = os.path.join(ROOT, "bench", "fintrec_bench")
    subprocess.run(["make", "-s", "-C", ROOT, "bench/fintrec_bench"], check=True)
    out = subprocess.run([binary, model_path, req_path, str(repeats)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def bench_sql(model_path, csv_path, workdir, repeats):
    """recommend() per user and recommend_batch() for all, in a fresh cluster."""
    cluster = os.path.join(workdir, "cluster")
    env = dict(os.environ)
    subprocess.run([os.path.join(ROOT, "test", "cluster.sh"), "start", cluster], check=True)
    try:
        for line in open(os.path.join(cluster, "env")).read().split()[1:]:
            k, v = line.split("=", 1)
            env[k] = v.strip("'")

        def psql(sql, *vars_):
            args = ["psql", "-qAtX", "-v", "ON_ERROR_STOP=1"]
            for v in vars_:
                args += ["-v", v]
            return subprocess.run(args + ["-c", sql] if sql else args, env=env, check=True,
                                  capture_output=True, text=True).stdout

        setup = """
CREATE EXTENSION pgformer;
CREATE TEMP TABLE staging (movie_id bigint, title text, year int, genres text,
                           user_id bigint, rating real, ts bigint);
COPY staging FROM '%s' WITH (FORMAT csv, HEADER true, NULL 'NA');
CREATE TABLE ratings AS SELECT user_id, movie_id, rating, ts FROM staging;
-- each user's last rating (by time, then movie id) is the request's target
CREATE TABLE targets AS
    SELECT DISTINCT ON (user_id) user_id, movie_id, ts FROM ratings
    ORDER BY user_id, ts DESC, movie_id DESC;
DELETE FROM ratings r USING targets t
    WHERE r.user_id = t.user_id AND r.movie_id = t.movie_id AND r.ts = t.ts;
CREATE INDEX ON ratings (user_id, ts DESC, movie_id DESC);
ANALYZE ratings, targets;
SELECT pgformer_load('recs', '%s');
SELECT pgformer_bind('recs', 'events',
    $$SELECT movie_id, ts, (rating * 2)::int FROM ratings
      WHERE user_id = $1 ORDER BY ts DESC, movie_id DESC LIMIT 200$$);
""" % (csv_path, model_path)
        with open(os.path.join(workdir, "setup.sql"), "w") as f:
            f.write(setup)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:", workdir], check=True)
        subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-f",
                        os.path.join(workdir, "setup.sql")], env=env, check=True,
                       capture_output=True)
        # one backend, a warm model; per call time measured around each call
        loop = """
DO $$
DECLARE t timestamptz; u record; lat float8[] := '{}';
BEGIN
    PERFORM count(*) FROM targets, LATERAL recommend(user_id, 10, 'recs', true, to_timestamp(ts));
    FOR i IN 1..%d LOOP
        FOR u IN SELECT user_id, ts FROM targets LOOP
            t := clock_timestamp();
            PERFORM count(*) FROM recommend(u.user_id, 10, 'recs', true, to_timestamp(u.ts));
            lat := lat || extract(epoch FROM clock_timestamp() - t) * 1e6;
        END LOOP;
    END LOOP;
    RAISE NOTICE '%%', (SELECT json_build_object(
        'median', percentile_cont(0.5) WITHIN GROUP (ORDER BY x),
        'p99', percentile_cont(0.99) WITHIN GROUP (ORDER BY x)) FROM unnest(lat) x);
END $$;
""" % repeats
        out = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", loop], env=env,
                             check=True, capture_output=True, text=True).stderr
        single = json.loads(out[out.index("{"):out.rindex("}") + 1])
        batch = """
DO $$
DECLARE t timestamptz; users bigint[] := (SELECT array_agg(user_id) FROM targets); took float8 := 0;
BEGIN
    PERFORM count(*) FROM recommend_batch(users, 10, 'recs');
    FOR i IN 1..%d LOOP
        t := clock_timestamp();
        PERFORM count(*) FROM recommend_batch(users, 10, 'recs');
        took := took + extract(epoch FROM clock_timestamp() - t);
    END LOOP;
    RAISE NOTICE '{"users_per_s": %%}', cardinality(users) * %d / took;
END $$;
""" % (repeats, repeats)
        out = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", batch], env=env,
                             check=True, capture_output=True, text=True).stderr
        throughput = json.loads(out[out.index("{"):out.rindex("}") + 1])["users_per_s"]
        return single["median"], single["p99"], throughput
    finally:
        subprocess.run([os.path.join(ROOT, "test", "cluster.sh"), "stop", cluster])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "demo", "models",
                                                             "fintrec_movielens.pgf"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-sql", action="store_true")
    args = ap.parse_args()
    csv_path = os.path.join(ROOT, "data", "movielens.csv")
    subprocess.run([os.path.join(ROOT, "tools", "data", "movielens.sh"), csv_path], check=True)
    model_path = os.path.abspath(args.model)
    model, _, _ = load_pgf(model_path)
    data = MovieLens(csv_path)
    reqs = requests(data)
    seqs = [r[1] for r in reqs]
    workdir = tempfile.mkdtemp(prefix="pgformer-bench.")
    os.chmod(workdir, 0o755)
    req_path = os.path.join(workdir, "requests.pgf")
    write_requests(reqs, req_path)

    print("FinTRec bench: %s, %d users, k = %d, one thread each" % (
        os.path.basename(model_path), len(seqs), K))
    ort_med, ort_p99, ort_tp, names = bench_onnx(model, seqs, args.repeats, workdir)
    pt_med, pt_p99, pt_tp = bench_torch(model, seqs, args.repeats, names)
    c = bench_c(model_path, req_path, args.repeats)
    rows = [("ONNX Runtime", ort_med, ort_p99, ort_tp),
            ("PyTorch", pt_med, pt_p99, pt_tp),
            ("pgformer C model", c["single_median_us"], c["single_p99_us"], c["batch_users_per_s"])]
    if not args.no_sql:
        sql_med, sql_p99, sql_tp = bench_sql(model_path, csv_path, workdir, args.repeats)
        rows.append(("pgformer SQL (whole call)", sql_med, sql_p99, sql_tp))
    print("%-28s %12s %12s %16s" % ("engine", "median us", "p99 us", "batch users/s"))
    for name, med, p99, tp in rows:
        print("%-28s %12.1f %12.1f %16.0f" % (name, med, p99, tp))
    print("ratios to ONNX Runtime (latency: lower is better; throughput: higher is better)")
    for name, med, p99, tp in rows[1:]:
        print("  %-26s median %.2fx  p99 %.2fx  throughput %.2fx" % (
            name, med / ort_med, p99 / ort_p99, tp / ort_tp))


if __name__ == "__main__":
    main()
