"""The ranking metrics of a FinTRec model on the MovieLens split
(tools/data/movielens.py).

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
"""
import numpy as np
import torch

from tools.data.movielens import ITEM_FIRST, ITEM_PAD, ITEM_UNKNOWN
from tools.models.fintrec import excluded_rows, topk


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
