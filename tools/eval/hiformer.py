"""Held-out quality of a Hiformer .pgf on MovieLens, next to
a logistic-regression baseline on the same features (tools/metrics/hiformer.py).

    python3 -m tools.eval.hiformer demo/models/hiformer_movielens.pgf
"""
import argparse
import os
import time

import torch

from tools.data import hiformer_features as hff
from tools.metrics.hiformer import auc, encode_examples, logistic_baseline, predict
from tools.models import hiformer as hf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, features = hf.load_pgf(args.model)
    data = hff.MovieLens()
    ex = hff.Examples(data)
    enc = encode_examples(features, ex)
    started = time.time()
    probs = predict(model, enc, ex.test)
    for k in range(model.c.n_tasks):
        name = model.c.task_names[k] if k < len(model.c.task_names) else str(k)
        print("hiformer  task %-5s held-out AUC %.4f (%d events, %.0f%% positive)"
              % (name, auc(ex.labels[ex.test, k], probs[:, k]), len(ex.test),
                 100 * ex.labels[ex.test, k].mean()))
    print("  (%.1f s for %d events in PyTorch)" % (time.time() - started, len(ex.test)))
    if not args.no_baseline:
        for k in range(model.c.n_tasks):
            name = model.c.task_names[k] if k < len(model.c.task_names) else str(k)
            print("logistic  task %-5s held-out AUC %.4f"
                  % (name, logistic_baseline(features, ex, enc, k)))


if __name__ == "__main__":
    main()
