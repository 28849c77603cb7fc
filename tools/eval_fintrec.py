"""eval_fintrec.py: MovieLens data, the leave-one-out split and the metrics.

Protocol (the same in training, in this script and in the C model, which
excludes seen items by default):
  - each user's ratings sorted by timestamp, ties broken by movieId;
  - the last rating is the test target, the one before it the validation
    target, the rest is training data;
  - a request for target j holds every earlier event of the user (the model
    keeps the newest max_events as input), its time ("now") is the target's
    timestamp, and the ranking runs over ALL items of the catalogue minus
    every item in the request (and the pad/unknown rows);
  - HR@10 = share of users whose target is in the top 10; NDCG@10 =
    mean of 1/log2(rank + 2) for those (rank from 0).
The popularity baseline ranks items by their count in the training data
(ties: lower item row, i.e. lower movieId), excluding the same items.

    python3 tools/eval_fintrec.py demo/models/fintrec_movielens.pgf
"""
import argparse
import csv
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fintrec import Sequence, excluded_rows, topk  # noqa: E402

ITEM_PAD, ITEM_UNKNOWN, ITEM_FIRST = 0, 1, 2
N_EVENT_TYPES = 11          # 0 unspecified, 1..10 = rating in half stars


class MovieLens:
    """Ratings grouped per user, sorted by (timestamp, movieId)."""

    def __init__(self, path):
        movie, user, rating, ts = [], [], [], []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                movie.append(int(row["movieId"]))
                user.append(int(row["userId"]))
                rating.append(float(row["rating"]))
                ts.append(int(row["timestamp"]))
        movie = np.array(movie, np.int64)
        user = np.array(user, np.int64)
        rating = np.array(rating)
        ts = np.array(ts, np.int64)
        self.item_ids = np.unique(movie)                 # sorted external ids
        rows = np.searchsorted(self.item_ids, movie) + ITEM_FIRST
        etype = np.clip(np.rint(rating * 2).astype(np.int64), 1, N_EVENT_TYPES - 1)
        order = np.lexsort((movie, ts, user))
        self.users = []
        bounds = np.flatnonzero(np.diff(user[order])) + 1
        for chunk in np.split(order, bounds):
            self.users.append({"user": int(user[chunk[0]]), "rows": rows[chunk],
                               "ids": movie[chunk], "types": etype[chunk],
                               "times": ts[chunk]})
        self.n_items = ITEM_FIRST + len(self.item_ids)
        self.n_ratings = len(movie)

    def train_part(self, u):
        """The training events of user record u (all but the last two)."""
        return {k: (v[:-2] if isinstance(v, np.ndarray) else v) for k, v in u.items()}

    def request(self, u, split):
        """(Sequence, target row) for split "val" or "test"."""
        j = len(u["rows"]) - (1 if split == "test" else 2)
        seq = Sequence(rows=u["rows"][:j], times=u["times"][:j], types=u["types"][:j],
                       now=int(u["times"][j]))
        return seq, int(u["rows"][j])


def rank_metrics(ranks, k=10):
    ranks = np.asarray(ranks)
    hit = ranks < k
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(hit.mean()), float(ndcg.mean())


def target_rank(logits, target, skip):
    """Rank (0 = best) of target among the rows not skipped, ties counted
    in the target's favour only for lower rows (the top-k order)."""
    s = np.asarray(logits, np.float64).copy()
    s[list(skip)] = -np.inf
    t = s[target]
    better = (s > t).sum() + (s[:target] == t).sum()
    return int(better)


@torch.no_grad()
def evaluate(model, data, split="test", batch=64):
    """HR@10, NDCG@10 of model over every user (see the protocol above)."""
    model.eval()
    ranks = []
    # batches of similar length (padding costs time, not accuracy)
    users = sorted(data.users, key=lambda u: min(len(u["rows"]), model.cfg.max_events))
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        reqs = [data.request(u, split) for u in chunk]
        logits = model.score([r[0] for r in reqs]).numpy()
        for (seq, target), row in zip(reqs, logits):
            ranks.append(target_rank(row, target, excluded_rows(model.cfg, seq)))
    return rank_metrics(ranks)


def popularity(data, split="test"):
    counts = np.zeros(data.n_items)
    for u in data.users:
        np.add.at(counts, data.train_part(u)["rows"], 1)
    counts[[ITEM_PAD, ITEM_UNKNOWN]] = -1
    ranks = []
    for u in data.users:
        seq, target = data.request(u, split)
        ranks.append(target_rank(counts, target, excluded_rows_plain(seq)))
    return rank_metrics(ranks)


def excluded_rows_plain(seq):
    rows = {ITEM_PAD, ITEM_UNKNOWN}
    rows.update(int(r) for r in seq.rows)
    return rows


def topk_check(model, data, n_users=5, k=10):
    """Top-k lists (external ids) for a few users, for a look by eye."""
    out = []
    for u in data.users[:n_users]:
        seq, target = data.request(u, "test")
        logits = model.score([seq])[0].numpy()
        rows = topk(logits, k, excluded_rows(model.cfg, seq))
        out.append((u["user"], data.item_ids[rows - ITEM_FIRST].tolist(),
                    int(data.item_ids[target - ITEM_FIRST])))
    return out


def main():
    from export_fintrec import load_pgf
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
