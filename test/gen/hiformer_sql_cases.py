#!/usr/bin/env python3
"""hiformer_sql_cases.py: Hiformer requests and PyTorch probabilities for
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
import struct
import sys

from tools import pgf

CASES = ("full", "lowrank")
MAX_REQUESTS = 40


class Reader:
    def __init__(self, blob):
        self.blob, self.pos = blob, 0

    def take(self, fmt):
        out = struct.unpack_from("<" + fmt, self.blob, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return out

    def value(self):
        kind, = self.take("B")
        if kind == 0:
            return None
        if kind == 1:
            x, = self.take("d")
            return x if math.isfinite(x) else None   # NaN and inf count as missing
        if kind == 2:
            c, = self.take("q")
            return c
        n, = self.take("I")
        return list(self.take("%dq" % n)) if n else []


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
            r = Reader(open(os.path.join(golden, case + ".rows"), "rb").read())
            assert r.take("8s")[0] == b"HIFG0001"
            n_requests, n_tasks, n_user, n_context, n_item = r.take("5I")
            for q in range(n_requests):
                n_cand, has_user, has_context = r.take("IBB")
                user = [r.value() for _ in range(n_user)] if has_user else None
                context = [r.value() for _ in range(n_context)] if has_context else None
                items = []
                for _ in range(n_cand):
                    has_item, = r.take("B")
                    items.append([r.value() for _ in range(n_item)] if has_item else None)
                r.take("4q")
                probs = r.take("%df" % (n_cand * n_tasks))
                if q >= MAX_REQUESTS:
                    continue
                for c in range(n_cand):
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
