#!/usr/bin/env python3
"""hiformer_bench.py: one ranking request (a user, 200 candidates) for the
Hiformer ranker on the same weights in ONNX Runtime, in PyTorch and in
pgformer's C model, in one run, plus what last-layer pruning and layer-0
reuse each save in pgformer.

    .venv/bin/python -m bench.hiformer_bench [MODEL.pgf] [--candidates 200] [--runs 300]

The venv keeps Debian's torch and numpy and adds the peer from PyPI:
    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install onnxruntime==1.20.1 onnx && .venv/bin/pip uninstall -y numpy
(pip brings numpy 2, which Debian's torch 1.13 cannot use; without it the
venv sees the system's numpy 1.24).  The request: feature values drawn around
each feature's training statistics (the user and context rows shared, one
item row per candidate; multi-hot genres of 1 to 3 codes).  Every engine
runs on one thread and on inputs prepared beforehand; the times are model
time for the whole request.  Prints the figures and the ratios to ONNX
Runtime, and the largest difference between the engines' probabilities.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tools.models.hiformer import DENSE, MULTI_HOT, encode_rows, load_pgf  # noqa: E402


def random_value(rng, f):
    if f.kind == DENSE:
        return f.default * (0.5 + rng.random()) if f.default else rng.random()
    if f.kind == MULTI_HOT:
        return sorted(rng.sample(range(1, f.vocab_size), min(3, f.vocab_size - 1))[:rng.randint(1, 3)])
    return rng.randrange(f.vocab_size)


def make_request(features, n, seed=0):
    rng = random.Random(seed)
    shared = {f.name: random_value(rng, f) for f in features if f.group != "item"}
    rows = []
    for _ in range(n):
        row = dict(shared)
        row.update({f.name: random_value(rng, f) for f in features if f.group == "item"})
        rows.append(row)
    return rows


def write_request(features, rows, path):
    groups = {g: [f for f in features if f.group == g] for g in ("user", "context", "item")}

    def line(v):
        if v is None:
            return "m"
        if isinstance(v, list):
            return "l %d %s" % (len(v), " ".join(str(int(c)) for c in v))
        if isinstance(v, int):
            return "c %d" % v
        return "n %.17g" % v

    with open(path, "w") as f:
        f.write("%d %d %d %d\n" % (len(groups["user"]), len(groups["context"]),
                                   len(groups["item"]), len(rows)))
        for g in ("user", "context"):
            for feat in groups[g]:
                f.write(line(rows[0].get(feat.name)) + "\n")
        for row in rows:
            for feat in groups["item"]:
                f.write(line(row.get(feat.name)) + "\n")


def timed(fn, runs):
    for _ in range(20):
        fn()
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1e6)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "demo", "models",
                                                             "hiformer_movielens.pgf"))
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(1)
    model, features = load_pgf(args.model)
    model.eval()
    rows = make_request(features, args.candidates)
    codes, weights, dense, _ = encode_rows(features, rows)
    work = tempfile.mkdtemp(prefix="pgformer-bench.")

    # ONNX: the same forward pass with flat inputs
    class Flat(torch.nn.Module):
        def __init__(self, m, n_cat):
            super().__init__()
            self.m, self.n_cat = m, n_cat

        def forward(self, *args):
            n = self.n_cat
            return self.m(list(args[:n]), list(args[n:2 * n]), args[2 * n])

    flat = Flat(model, len(codes))
    inputs = list(codes) + list(weights) + [dense]
    names = ["c%d" % i for i in range(len(codes))] + ["w%d" % i for i in range(len(codes))] + ["dense"]
    onnx_path = os.path.join(work, "hiformer.onnx")
    with torch.no_grad():
        torch.onnx.export(flat, tuple(inputs), onnx_path, input_names=names,
                          output_names=["probabilities"], opset_version=14,
                          dynamic_axes={n: {0: "B"} for n in names})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    feed = {n: t.numpy() for n, t in zip(names, inputs)}
    ort_probs = sess.run(None, feed)[0]
    ort_med, ort_p99 = timed(lambda: sess.run(None, feed), args.runs)

    with torch.no_grad():
        pt_probs = flat(*inputs).numpy()
        pt_med, pt_p99 = timed(lambda: flat(*inputs), args.runs)

    req_path = os.path.join(work, "request.txt")
    write_request(features, rows, req_path)
    subprocess.run(["make", "-s", "-C", ROOT, "bench/hiformer_bench"], check=True)
    out = subprocess.run([os.path.join(ROOT, "bench", "hiformer_bench"), args.model, req_path,
                          str(args.runs)], check=True, capture_output=True, text=True).stdout
    c = json.loads(out)
    first = np.array(c["first"])
    diff = max(float(np.abs(first - ort_probs[:len(first), 0]).max()),
               float(np.abs(first - pt_probs[:len(first), 0]).max()))

    print("Hiformer bench: %s, one user, %d candidates, one thread each" % (
        os.path.basename(args.model), args.candidates))
    print("%-40s %12s %12s" % ("engine", "median us", "p99 us"))
    rows_out = [("ONNX Runtime", ort_med, ort_p99), ("PyTorch", pt_med, pt_p99),
                ("pgformer C model (pruning + layer-0 reuse)", c["median_us"], c["p99_us"])]
    for name, med, p99 in rows_out:
        print("%-40s %12.1f %12.1f" % (name, med, p99))
    print("ratios to ONNX Runtime: PyTorch %.2fx, pgformer %.2fx (median)" % (
        pt_med / ort_med, c["median_us"] / ort_med))
    print("pgformer without last-layer pruning %.1f us (pruning saves %.0f%%), without layer-0 "
          "reuse %.1f us (reuse saves %.0f%%), without both %.1f us" % (
              c["no_pruning_median_us"], 100 * (1 - c["median_us"] / c["no_pruning_median_us"]),
              c["no_reuse_median_us"], 100 * (1 - c["median_us"] / c["no_reuse_median_us"]),
              c["neither_median_us"]))
    print("largest probability difference between engines (first candidates): %.2g" % diff)


if __name__ == "__main__":
    main()
