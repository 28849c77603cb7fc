"""Trains the demo FinTRec models on MovieLens latest-small.

    tools/data/movielens.sh                     # writes data/movielens.csv
    python3 -m tools.train.fintrec     # writes demo/models/fintrec_*.pgf
    python3 -m tools.train.fintrec --variants sasrec --out /tmp/x
                                                # the plain SASRec baseline

Seeded, one thread: the same run gives the same files (about 15 minutes
on one free core).  Splits and metrics: tools/eval/fintrec.py.  Every
event is a rating; its event type is the rating in half stars (1..10;
0 = unspecified, used by callers that pass no types, and trained by
dropping 10% of the types).  There is one channel.  2% of input items are
replaced by the unknown row so that unknown ids map to a trained embedding.

Model (d 64, 2 layers, 2 heads, max 200 events): query-token read-out,
TE(t) on every token, an attention bias over time (tau 1 day) and token
distance (index_bias 1: without it the query cannot tell the latest of a
burst of same-second ratings), item embeddings scaled by sqrt(d) so that
the item dominates its token, tied scoring table with W_c and item bias.
At 10 epochs, validation HR@10 was 0.057 with neither of the last two
switches, 0.069 with the index bias and 0.097 with both.  --set
FIELD=VALUE overrides any fintrec.Config field for experiments.

Decoder (pCTR, causal): one pass per window of up to max_events training
events, with a query token before every event (the query after i events
predicts event i, at that event's time; see fintrec.build), so every
position trains a serving request.  Loss: softmax over all items except
those the request already holds, which recommend() excludes by default.
Encoder (pCVR, bidirectional): the decoder's weights, then one request per
sampled cut point.  The epoch with the best validation NDCG@10 is kept;
validation and test metrics go into the file's metadata.
"""
import argparse
import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from tools.data.movielens import ITEM_FIRST, N_EVENT_TYPES, MovieLens
from tools.export.fintrec import write_pgf
from tools.metrics.fintrec import evaluate, popularity
from tools.models.fintrec import Config, FinTRec, Sequence, build, collate


def base_config(data, variant, args):
    cfg = _base_config(data, variant, args)
    for item in args.set:
        key, value = item.split("=", 1)
        old = getattr(cfg, key)
        setattr(cfg, key, type(old)(float(value)) if not isinstance(old, str) else value)
    return cfg


def _base_config(data, variant, args):
    if variant == "sasrec":
        # the baseline users know: no time, no event types, tied table, ReLU
        return Config(variant="decoder", n_items=data.n_items, max_events=args.max_events,
                      d_model=args.d, n_layers=args.layers, n_heads=args.heads,
                      d_ff=args.d, activation="relu", time_encoding=False,
                      time_bias=False, learned_positions=True, scale_embeddings=True,
                      tied_item_table=True, score_transform=False, item_bias=False,
                      placement_bias=False, readout_last_event=True, dropout=args.dropout)
    return Config(variant=variant, n_items=data.n_items, n_event_types=N_EVENT_TYPES,
                  n_channels=1, n_placements=1, max_events=args.max_events,
                  d_model=args.d, n_layers=args.layers, n_heads=args.heads,
                  d_ff=4 * args.d, time_encoding=True, time_bias=True,
                  time_bias_tau=args.tau_days * 86400.0, index_bias=args.index_bias,
                  scale_embeddings=True, dropout=args.dropout)


def corrupt(rng, rows, types, args):
    rows = rows.copy()
    types = types.copy()
    rows[rng.random(len(rows)) < args.unknown_rate] = 1
    types[rng.random(len(types)) < args.type_drop] = 0
    return rows, types


def decoder_windows(data, W):
    """(user index, start, end) windows of training events, newest first."""
    out = []
    for ui, u in enumerate(data.users):
        n = len(u["rows"]) - 2
        end = n
        while end > 0:
            out.append((ui, max(0, end - W), end))
            end -= W
    return out


def seen_pairs(entries):
    """(query index, item row) pairs of items each training query must not
    predict because its request already holds them (the evaluation and
    recommend() exclude them too).  entries: (history rows, positions) per
    sequence, in query order; a query at position p has seen history[:p]."""
    qs, rows, k0 = [], [], 0
    for hist, ps in entries:
        ps = np.asarray(ps, np.int64)
        if len(ps):
            hist = hist[:ps.max()]
            qi, j = np.nonzero(np.arange(len(hist))[None, :] < ps[:, None])
            qs.append(qi + k0)
            rows.append(hist[j])
        k0 += len(ps)
    if not qs:
        return None
    return torch.from_numpy(np.concatenate(qs)), torch.from_numpy(np.concatenate(rows))


def decoder_batch(cfg, data, windows, rng, args):
    lays, targets, seen = [], [], []
    for ui, s, e in windows:
        u = data.users[ui]
        n_train = len(u["rows"]) - 2
        rows, types = corrupt(rng, u["rows"][s:e], u["types"][s:e], args)
        times = u["times"][s:e]
        # query i (after i events of the window) predicts event s + i
        qt = np.concatenate([u["times"][s:e], [u["times"][e] if e < n_train else times[-1]]])
        tg = np.concatenate([u["rows"][s:e], [u["rows"][e] if e < n_train else -1]])
        if s > 0:
            tg[0] = -1              # not a cold start: its history is in the previous window
        if cfg.readout_last_event:
            # SASRec: the output at event i predicts event i + 1
            lay = build(cfg, Sequence(rows=rows, times=times, types=types))
            t = np.full(len(lay["kind"]), -1, np.int64)
            t[lay["kind"] == 3] = tg[1:]
            pos = s + 1 + np.flatnonzero(tg[1:] >= 0)
        else:
            lay = build(cfg, Sequence(rows=rows, times=times, types=types), query_times=qt)
            t = np.full(len(lay["kind"]), -1, np.int64)
            t[lay["kind"] == 4] = tg
            pos = s + np.flatnonzero(tg >= 0)
        lays.append(lay)
        targets.append(t)
        seen.append((u["rows"], pos))
    batch = collate(cfg, lays)
    L = batch["kind"].shape[1]
    tgt = np.full((len(lays), L), -1, np.int64)
    for b, t in enumerate(targets):
        tgt[b, :len(t)] = t
    return batch, torch.from_numpy(tgt), seen_pairs(seen)


def encoder_batch(cfg, data, samples, rng, args):
    seqs, tg = [], []
    for ui, c in samples:
        u = data.users[ui]
        s = max(0, c - cfg.max_events)
        rows, types = corrupt(rng, u["rows"][s:c], u["types"][s:c], args)
        seqs.append(Sequence(rows=rows, times=u["times"][s:c], types=types,
                             now=int(u["times"][c])))
        tg.append(int(u["rows"][c]))
    lays = [build(cfg, sq) for sq in seqs]
    batch = collate(cfg, lays)
    L = batch["kind"].shape[1]
    tgt = np.full((len(lays), L), -1, np.int64)
    for b, lay in enumerate(lays):
        tgt[b, len(lay["kind"]) - 1] = tg[b]
    seen = seen_pairs([(data.users[ui]["rows"], [c]) for ui, c in samples])
    return batch, torch.from_numpy(tgt), seen


def loss_of(model, batch, tgt, seen):
    """Softmax cross-entropy over every real item, minus the items each
    query's request already holds (as recommend() excludes them)."""
    hid = model.hidden(batch)
    sel = tgt >= 0
    h = hid[sel]
    place = batch["placement"].unsqueeze(1).expand_as(tgt)[sel]
    target = tgt[sel]
    logits = model.logits(h, place)
    mask = torch.zeros(logits.shape, dtype=torch.bool)
    mask[:, :ITEM_FIRST] = True
    if seen is not None:
        mask[seen[0], seen[1]] = True
    mask[torch.arange(len(target)), target] = False
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), target)


def train(variant, data, args, log, init=None):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    cfg = base_config(data, variant, args)
    model = FinTRec(cfg)
    if init is not None:
        # same parameters, another mask: start from the trained decoder
        model.load_state_dict(init.state_dict())
    epochs = args.epochs if init is None else args.encoder_epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd, foreach=True)
    best = (-1.0, None, -1)
    if cfg.variant == "decoder":
        units = decoder_windows(data, cfg.max_events)
    for epoch in range(1, epochs + 1):
        # linear decay to 0 over the run
        for group in opt.param_groups:
            group["lr"] = args.lr * (1.0 - (epoch - 1) / epochs)
        model.train()
        t0 = time.time()
        if cfg.variant == "decoder":
            # batches of similar length
            order = rng.permutation(len(units))
            chunks = [order[i:i + args.batch * 8] for i in range(0, len(order), args.batch * 8)]
            batches = []
            for ch in chunks:
                ch = sorted(ch, key=lambda i: units[i][2] - units[i][1])
                batches += [[units[i] for i in ch[j:j + args.batch]]
                            for j in range(0, len(ch), args.batch)]
            rng.shuffle(batches)
            make = decoder_batch
        else:
            samples = []
            for ui, u in enumerate(data.users):
                n = len(u["rows"]) - 2
                for c in rng.integers(0, n, size=args.cuts):
                    samples.append((ui, int(c)))
            # batches of similar length, in random order
            samples.sort(key=lambda s: s[1])
            bs = args.batch * 4
            batches = [samples[i:i + bs] for i in range(0, len(samples), bs)]
            rng.shuffle(batches)
            make = encoder_batch
        total, count = 0.0, 0
        for b in batches:
            batch, tgt, seen = make(cfg, data, b, rng, args)
            loss = loss_of(model, batch, tgt, seen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
            count += 1
        hr, ndcg = evaluate(model, data, "val")
        log("%s epoch %d: loss %.4f, val HR@10 %.4f NDCG@10 %.4f (%.1f s)"
            % (variant, epoch, total / count, hr, ndcg, time.time() - t0))
        if ndcg > best[0]:
            best = (ndcg, copy.deepcopy(model.state_dict()), epoch)
    model.load_state_dict(best[1])
    return model, best[2]


def main():
    ap = argparse.ArgumentParser(description="Train the demo FinTRec models")
    ap.add_argument("--data", default="data/movielens.csv")
    ap.add_argument("--out", default="demo/models")
    ap.add_argument("--variants", default="decoder,encoder")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cuts", type=int, default=16, help="encoder samples per user and epoch")
    ap.add_argument("--encoder-epochs", type=int, default=8,
                    help="epochs of an encoder started from the decoder")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--max-events", type=int, default=200)
    ap.add_argument("--tau-days", type=float, default=1.0)
    ap.add_argument("--index-bias", type=float, default=1.0,
                    help="weight of the token distance in the attention bias")
    ap.add_argument("--unknown-rate", type=float, default=0.02)
    ap.add_argument("--type-drop", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a fintrec.Config field, e.g. learned_positions=1")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = MovieLens(args.data)

    def log(msg):
        print(msg, flush=True)

    log("%d ratings, %d users, %d items" % (data.n_ratings, len(data.users), len(data.item_ids)))
    pop = popularity(data, "test")
    log("popularity: test HR@10 %.4f NDCG@10 %.4f" % pop)
    names = {"decoder": "fintrec_movielens", "encoder": "fintrec_movielens_encoder",
             "sasrec": "sasrec_movielens"}
    trained = {}
    for variant in args.variants.split(","):
        t0 = time.time()
        init = trained.get("decoder") if variant == "encoder" else None
        model, epoch = train(variant, data, args, log, init)
        trained[variant] = model
        val = evaluate(model, data, "val")
        test = evaluate(model, data, "test")
        minutes = (time.time() - t0) / 60
        log("%s: best epoch %d, val HR@10 %.4f NDCG@10 %.4f, test HR@10 %.4f NDCG@10 %.4f"
            " (%.1f min)" % ((variant, epoch) + val + test + (minutes,)))
        if args.no_write:
            continue
        meta = {
            "dataset": "MovieLens latest-small (r-cran-dslabs): %d ratings, %d users, %d items"
                       % (data.n_ratings, len(data.users), len(data.item_ids)),
            "protocol": "leave-last-out per user (time, then movieId); ranking over all items "
                        "excluding the request's items; now = target time",
            "event_types": "rating in half stars 1..10; 0 = unspecified",
            "trained_by": "python3 -m tools.train.fintrec --seed %d (%s; best epoch %d)"
                          % (args.seed, "initialised from the decoder" if init is not None
                             else "from scratch", epoch),
            "train_args": " ".join("--%s %s" % (k.replace("_", "-"), v)
                                   for k, v in sorted(vars(args).items())
                                   if k not in ("data", "out", "no_write")),
            "val_hr@10": "%.4f" % val[0], "val_ndcg@10": "%.4f" % val[1],
            "test_hr@10": "%.4f" % test[0], "test_ndcg@10": "%.4f" % test[1],
            "popularity_test_hr@10": "%.4f" % pop[0],
            "popularity_test_ndcg@10": "%.4f" % pop[1],
        }
        path = os.path.join(args.out, names[variant] + ".pgf")
        os.makedirs(args.out, exist_ok=True)
        size = write_pgf(model, data.item_ids, path, names[variant], meta)
        log("wrote %s (%d bytes)" % (path, size))


if __name__ == "__main__":
    main()
