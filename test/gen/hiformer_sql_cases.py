#!/usr/bin/env python3
"""Hiformer requests and PyTorch probabilities for
the SQL tests (test/sql/20_rank.sql), from the reference rows that
test/gen/golden_hiformer.py writes for the C parity test.

    test/gen/hiformer_sql_cases.py GOLDEN_DIR OUTDIR

For the random full-rank and low-rank models, copies <case>.pgf to OUTDIR
and writes OUTDIR/hiformer_rows.csv: model, request, candidate, the
candidate's features as one JSON object (user, context and item values;
a missing row or value is a missing key or null) and PyTorch's probability
of each task.  score() must reproduce the probabilities.
"""
import csv
import json
import math
import os
import shutil
import sys

from tools import pgf

CASES = ("full", "lowrank")
MAX_REQUESTS = 40


def read_rows(path):
    """The requests of a rows file (its layout: test/gen/golden_hiformer.py):
    per request the user values (None: no row), context values, each
    candidate's item values (None: no row) and the probabilities."""
    t = pgf.read(path).tensors
    _, n_tasks, n_user, n_context, n_item = (int(x) for x in t["dims"])
    kind, bits, count, codes = t["val.kind"], t["val.bits"], t["val.count"], t["codes"]

    def value(i):
        if kind[i] == 0:
            return None
        if kind[i] == 1:
            x = float(bits[i:i + 1].view("<f8")[0])
            return x if math.isfinite(x) else None   # NaN and inf count as missing
        if kind[i] == 2:
            return int(bits[i])
        return [int(c) for c in codes[bits[i]:bits[i] + count[i]]]

    def take(n):
        nonlocal v
        v += n
        return [value(i) for i in range(v - n, v)]

    candidate = 0
    for n, has_user, has_context, *_, first in t["req.meta"]:
        v = int(first)
        user = take(n_user) if has_user else None
        context = take(n_context) if has_context else None
        items = [take(n_item) if t["req.found"][candidate + c] else None for c in range(n)]
        probs = t["req.probs"][candidate:candidate + n].reshape(-1)
        candidate += n
        yield user, context, items, n_tasks, probs


def features_by_group(path):
    header = pgf.read(path).header
    groups = {"user": [], "context": [], "item": []}
    for f in header.features:
        groups[f.group].append(f.name)
    return groups


def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "hiformer_rows.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "request", "candidate", "features", "probabilities"])
        for case in CASES:
            model_path = os.path.join(out, "hif_%s.pgf" % case)
            shutil.copy(os.path.join(golden, case + ".pgf"), model_path)
            groups = features_by_group(model_path)
            rows = read_rows(os.path.join(golden, case + ".rows.pgf"))
            for q, (user, context, items, n_tasks, probs) in enumerate(rows):
                if q >= MAX_REQUESTS:
                    continue
                for c in range(len(items)):
                    row = {}
                    for names, values in (("user", user), ("context", context),
                                          ("item", items[c])):
                        if values is not None:
                            row.update(zip(groups[names], values))
                    w.writerow(["hif_" + case, q, c, json.dumps(row),
                                "{%s}" % ",".join("%.9g" % p for p in
                                                  probs[c * n_tasks:(c + 1) * n_tasks])])


if __name__ == "__main__":
    main()
