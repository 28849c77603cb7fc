"""HR@10 and NDCG@10 of FinTRec model files on MovieLens, next to
the popularity baseline (the protocol: tools/metrics/fintrec.py).

    python3 -m tools.eval.fintrec demo/models/fintrec_movielens.pgf
"""
import argparse

import numpy as np
import torch

from tools.data.movielens import MovieLens
from tools.export.fintrec import load_pgf
from tools.metrics.fintrec import evaluate, popularity


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="data/movielens.csv")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = MovieLens(args.data)
    hr, ndcg = popularity(data)
    print("popularity: HR@10 %.4f NDCG@10 %.4f" % (hr, ndcg))
    for path in args.models:
        model, ids, meta = load_pgf(path)
        if not np.array_equal(ids, data.item_ids):
            print("%s: its item table differs from the data's" % path)
        hr, ndcg = evaluate(model, data, "test")
        print("%s: HR@10 %.4f NDCG@10 %.4f (metadata: %s / %s)"
              % (path, hr, ndcg, meta.get("test_hr@10"), meta.get("test_ndcg@10")))


if __name__ == "__main__":
    main()
