#!/usr/bin/env python3
"""fintrec_sql_cases.py: FinTRec requests and PyTorch answers for the SQL
parity test (test/sql/10_recommend.sql).

    test/gen/fintrec_sql_cases.py GOLDEN_DIR OUTDIR

For each random model that test/gen/golden_fintrec.py wrote to GOLDEN_DIR
(decoder, encoder, plain SASRec), copies the model to OUTDIR and draws 60
requests of the kind a bound events query produces (placement 0, no static
values or foundation-model embedding, events in time order, with or without
event types and channels, cold starts, unknown ids, sequences longer than
the model keeps).  Writes OUTDIR/fintrec_events.csv (model, user_id,
item_id, ts, event_type, channel) and OUTDIR/fintrec_expected.csv (model,
user_id, now, top-10 ids and scores with exclude_seen), the reference
being tools/models/fintrec.py in float64 on the weights as stored.  Some requests
are made as of a time before their newest events: the events file keeps
those events, the reference leaves them out, as recommend(..., at => now)
must.
"""
import csv
import os
import shutil
import sys

import numpy as np
import torch

from golden_fintrec import random_case, to_sequence
from tools.export.fintrec import load_pgf
from tools.models.fintrec import excluded_rows, topk

MODELS = ("random_decoder", "random_encoder", "random_sasrec")
CASES = 60
TOP = 10


@torch.no_grad()
def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "fintrec_events.csv"), "w", newline="") as ef, \
            open(os.path.join(out, "fintrec_expected.csv"), "w", newline="") as xf:
        events, expected = csv.writer(ef), csv.writer(xf)
        events.writerow(["model", "user_id", "item_id", "ts", "event_type", "channel"])
        expected.writerow(["model", "user_id", "now", "top_ids", "top_scores"])
        for seed, name in enumerate(MODELS):
            path = os.path.join(out, name + ".pgf")
            shutil.copy(os.path.join(golden, name + ".pgf"), path)
            model, ids, _ = load_pgf(path, double=True)
            cfg = model.cfg
            rng = np.random.default_rng(1000 + seed)
            for user in range(CASES):
                case = random_case(rng, cfg, ids, user)
                # what SQL expresses: newest first, strictly ordered times,
                # placement 0, no static context or FM embedding
                order = np.argsort(case["times"], kind="stable")[::-1]
                times = case["times"][order]
                times = times + np.arange(len(times), 0, -1)   # strict order
                case.update(items=case["items"][order], times=times, types=case["types"][order],
                            chans=case["chans"][order], newest_first=1, placement=0,
                            has_static=0, has_fm=0)
                # an answer as of `now` sees no event after it
                seen = case["times"] <= case["now"]
                as_of = dict(case, items=case["items"][seen], times=case["times"][seen],
                             types=case["types"][seen], chans=case["chans"][seen])
                seq, _ = to_sequence(cfg, ids, as_of)
                logits = model.score([seq])[0].numpy()
                best = topk(logits, TOP, excluded_rows(cfg, seq))
                for j in range(len(case["items"])):
                    events.writerow([name, user, int(case["items"][j]), int(case["times"][j]),
                                     int(case["types"][j]) if case["has_types"] else "",
                                     int(case["chans"][j]) if case["has_chans"] else ""])
                expected.writerow([name, user, int(case["now"]),
                                   "{%s}" % ",".join(str(int(v)) for v in ids[best - cfg.item_first]),
                                   "{%s}" % ",".join("%.9g" % v for v in logits[best])])


if __name__ == "__main__":
    main()
