"""Trains the MovieLens Hiformer ranker and exports it.

Data: data/movielens.csv (tools/data/movielens.sh).  Every rating is an
example with features as of its own timestamp (tools/data/hiformer_features.py);
labels: like = rating >= 4 (task 0), love = rating >= 4.5 (task 1).  The
latest 20% of events are held out; the last 10% of the remaining time is
the validation set for early stopping.  Reports held-out AUC next to a
logistic regression on the same features, writes a checkpoint and the .pgf
(with the SQL binding queries and the figures in its metadata).

    python3 -m tools.train.hiformer \
        --out demo/models/hiformer_movielens.pgf [--rank-k 32 --rank-v 64]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

from tools.data import hiformer_features as hff
from tools.export import hiformer as exporter
from tools.metrics import hiformer as ev
from tools.models import hiformer as hf


def batches(idx, size, rng):
    idx = idx[rng.permutation(len(idx))]
    for s in range(0, len(idx), size):
        yield idx[s:s + size]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo/models/hiformer_movielens.pgf")
    ap.add_argument("--checkpoint", default="build/hiformer/movielens.pt")
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dense-tokens", type=int, default=4)
    ap.add_argument("--rank-k", type=int, default=32)
    ap.add_argument("--rank-v", type=int, default=64)
    ap.add_argument("--tower", type=int, nargs="*", default=[32])
    ap.add_argument("--prenorm", action="store_true")
    ap.add_argument("--activation", default="gelu")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-5)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.998,
                    help="decay of the weight average that is evaluated and exported (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    started = time.time()

    data = hff.MovieLens()
    ex = hff.Examples(data)
    features = hff.fit_features(ex.subset(ex.train))
    enc = ev.encode_examples(features, ex)
    codes, weights, dense = enc
    labels = torch.as_tensor(ex.labels)
    val_cut = int(np.quantile(ex.ts[ex.train], 0.9))
    fit_idx = ex.train[ex.ts[ex.train] < val_cut]
    val_idx = ex.train[ex.ts[ex.train] >= val_cut]
    print("train_hiformer: %d ratings: %d fit, %d validation, %d held out (%.1f s features)"
          % (len(ex.ts), len(fit_idx), len(val_idx), len(ex.test), time.time() - started),
          flush=True)

    c = hf.config_for(features, n_dense_tokens=args.dense_tokens, n_tasks=len(hff.TASKS),
                      d_model=args.d_model, n_heads=args.heads,
                      head_dim=args.d_model // args.heads, d_ff=args.d_ff,
                      n_layers=args.layers, rank_k=args.rank_k, rank_v=args.rank_v,
                      prenorm=args.prenorm, activation=args.activation,
                      tower_sizes=args.tower, task_names=list(hff.TASKS),
                      dropout=args.dropout)
    model = hf.Hiformer(c)
    n_params = sum(p.numel() for p in model.parameters())
    print("train_hiformer: T=%d tokens, %d parameters" % (c.n_tokens, n_params), flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    task_weight = torch.tensor([1.0, 0.5])
    # An exponential moving average of the weights is what gets evaluated
    # and exported: on this small, noisy data it beats the raw weights.
    average = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best, best_state, bad, step = -1.0, None, 0, 0
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        total = 0.0
        for b in batches(fit_idx, args.batch, rng):
            i = torch.as_tensor(b)
            logits = model.logits([x[i] for x in codes], [w[i] for w in weights], dense[i])
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels[i], reduction="none").mean(0) * task_weight).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            step += 1
            decay = min(args.ema, (1.0 + step) / (10.0 + step))    # short warm-up
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if args.ema and v.dtype.is_floating_point:
                        average[k].mul_(decay).add_(v, alpha=1 - decay)
                    else:
                        average[k].copy_(v)
        live = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(average)
        model.eval()
        val = ev.auc(ex.labels[val_idx, 0], ev.predict(model, enc, val_idx)[:, 0])
        print("  epoch %2d  loss %.4f  validation AUC %.4f  (%.0f s)"
              % (epoch + 1, total / len(fit_idx), val, time.time() - t0), flush=True)
        if val > best:
            best, bad = val, 0
            best_state = {k: v.clone() for k, v in average.items()}
        else:
            bad += 1
            if bad >= args.patience:
                break
        model.load_state_dict(live)
    model.load_state_dict(best_state)
    model.eval()

    probs = ev.predict(model, enc, ex.test)
    result = {}
    for k, task in enumerate(hff.TASKS):
        result["auc_" + task] = ev.auc(ex.labels[ex.test, k], probs[:, k])
        result["lr_auc_" + task] = ev.logistic_baseline(features, ex, enc, k)
        print("held-out AUC %-4s: hiformer %.4f, logistic regression %.4f"
              % (task, result["auc_" + task], result["lr_auc_" + task]))

    os.makedirs(os.path.dirname(args.checkpoint) or ".", exist_ok=True)
    cfg = dict(c.__dict__)
    cfg["dropout"] = 0.0
    queries = hff.sql_queries()
    metadata = {
        "dataset": "MovieLens latest-small (tools/data/movielens.sh), %d ratings" % len(ex.ts),
        "labels": "like = rating >= 4, love = rating >= 4.5",
        "split": "train before %d (unix s), held out: the latest %d%% of events (%d)"
                 % (ex.cutoff, int(hff.HOLDOUT_FRACTION * 100), len(ex.test)),
        "features": "tools/data/hiformer_features.py / tools/data/hiformer_features.sql",
        "trained_by": "python3 -m tools.train.hiformer " + " ".join(sys.argv[1:]),
    }
    for k, v in result.items():
        metadata["heldout_" + k] = "%.4f" % v
    for name, q in queries.items():
        metadata["sql." + name] = q
    torch.save({"config": cfg, "state": model.state_dict(),
                "features": [f.__dict__ for f in features], "metadata": metadata},
               args.checkpoint)
    model.c.dropout = 0.0
    n = exporter.export(model, features, args.out, "hiformer_movielens", metadata)
    print("train_hiformer: wrote %s (%d bytes) and %s in %.0f s"
          % (args.out, n, args.checkpoint, time.time() - started))


if __name__ == "__main__":
    main()
