"""golden_fintrec.py: reference outputs for the C FinTRec model's parity test.

    python3 test/gen/golden_fintrec.py OUTDIR      (test/unit/golden/fintrec)

Writes, for each model, OUTDIR/<name>.pgf (the model) and
OUTDIR/<name>.cases.pgf (its requests and the reference answers, stored as
tensors of a .pgf file so the C test reads them with the ordinary reader).
Models: four with random weights covering the switches (a decoder with
every input kind, an encoder, a decoder without time, plain SASRec) and the committed demo models
when present.  100 random requests per model: lengths from 0 (cold start)
to beyond max_events, unknown ids, repeated items, either event order,
optional types/channels/static values/FM embedding, several placements.
The reference is tools/models/fintrec.py in float64 on the weights as stored
(read back from the written file).

Case tensors (N requests, E events in all, R item rows):
  ev.offsets i64 [N+1]; ev.items i64 [E]; ev.times i64 [E]; ev.types i32 [E];
  ev.chans i32 [E] (in the order given to the model)
  case.flags i32 [N, 5]: has_types, has_chans, has_static, has_fm, newest_first
  case.placement i32 [N]; case.now i64 [N]; case.static i32 [N, S]; case.fm f32 [N, F]
  ref.logits f32 [N, R] (placement bias included)
  ref.top_ids i64 [N, 10]; ref.top_scores f32 [N, 10]; ref.top_count i32 [N]
      (exclude_seen; -1 / 0 past top_count)
  ref.unknown i32 [N]; ref.eligible i32 [N] (items a k = all request returns)
"""
import os
import shutil
import sys

import numpy as np
import torch

from tools import pgf
from tools.export.fintrec import load_pgf, write_pgf
from tools.models.fintrec import Config, FinTRec, Sequence, excluded_rows, topk

TOP = 10
N_CASES = 100
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def random_model(cfg, seed):
    torch.manual_seed(seed)
    model = FinTRec(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "log_slopes":
                p.copy_(torch.log(torch.rand_like(p) * 0.9 + 0.1))
            elif name.endswith("ln1.weight") or name.endswith("ln2.weight") \
                    or name == "lnf.weight":
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.dim() == 2:
                p.copy_(torch.randn_like(p) * (0.6 / p.shape[1] ** 0.5))
            else:
                p.copy_(torch.randn_like(p) * 0.1)
        model.item.weight.mul_(3.0)
        if model.out_item is not None:
            model.out_item.mul_(3.0)
    return model


RANDOM_MODELS = {
    # every input kind, untied scoring table, W_c, all biases
    "random_decoder": Config(
        variant="decoder", n_event_types=5, n_channels=3, n_placements=3,
        static_vocab=(4, 7), d_fm=6, max_events=24, d_model=32, n_layers=2, n_heads=4,
        d_ff=64, activation="gelu_erf", time_encoding=True, time_bias=True,
        time_bias_tau=86400.0, index_bias=0.5, learned_positions=True,
        scale_embeddings=False,
        tied_item_table=False, score_transform=True, item_bias=True,
        placement_bias=True),
    "random_encoder": Config(
        variant="encoder", n_event_types=4, n_channels=2, n_placements=2,
        static_vocab=(5,), d_fm=0, max_events=20, d_model=24, n_layers=3, n_heads=2,
        d_ff=48, activation="gelu_tanh", time_encoding=True, time_bias=True,
        time_bias_tau=3 * 86400.0, learned_positions=False, scale_embeddings=True,
        tied_item_table=True, score_transform=False, item_bias=True,
        placement_bias=True),
    # no time at all: an ALiBi bias over token distance only
    "random_alibi": Config(
        variant="decoder", n_event_types=3, n_channels=0, n_placements=2,
        static_vocab=(3,), max_events=12, d_model=16, n_layers=1, n_heads=4, d_ff=32,
        activation="gelu_erf", time_encoding=False, time_bias=False, index_bias=0.25,
        learned_positions=False, tied_item_table=True, score_transform=True,
        item_bias=True, placement_bias=False),
    # plain SASRec: learned positions, sqrt(d) scale, tied table, no time
    "random_sasrec": Config(
        variant="decoder", n_event_types=0, n_channels=0, n_placements=1,
        max_events=16, d_model=16, n_layers=2, n_heads=2, d_ff=16, activation="relu",
        time_encoding=False, time_bias=False, learned_positions=True,
        scale_embeddings=True, tied_item_table=True, score_transform=False,
        item_bias=False, placement_bias=False, readout_last_event=True),
}


def make_ids(rng, n):
    """Sorted unique sparse external ids (some negative, some large)."""
    pool = np.unique(rng.integers(-1000, 10 ** 9, size=3 * n))
    return np.sort(rng.choice(pool, size=n, replace=False))


def random_case(rng, cfg, ids, i):
    max_n = int(cfg.max_events * 1.5) + 2
    if i < 6:
        n = 0                                   # cold starts
    elif i < 12:
        n = max_n                               # truncation
    else:
        n = int(rng.integers(1, max_n))
    known = ids[rng.integers(0, len(ids), size=n)]
    unknown_share = 1.0 if i == 13 else 0.1
    unk = rng.random(n) < unknown_share
    unknown_ids = rng.integers(-10 ** 12, 10 ** 12, size=n)
    items = np.where(unk & ~np.isin(unknown_ids, ids), unknown_ids, known)
    base = int(rng.integers(1_200_000_000, 1_600_000_000))
    gaps = rng.exponential(6 * 3600, size=n).astype(np.int64)
    times = base + np.cumsum(gaps)
    if i % 10 == 3:
        rng.shuffle(times)                      # out-of-order times
    now = int((times[-1] if n else base) + rng.integers(0, 2 * 86400))
    if i % 13 == 7:
        now -= 3 * 86400                        # now before the last event
    case = {
        "items": items.astype(np.int64), "times": times.astype(np.int64),
        "types": rng.integers(0, max(cfg.n_event_types, 1), size=n).astype(np.int32),
        "chans": rng.integers(0, max(cfg.n_channels, 1), size=n).astype(np.int32),
        "has_types": int(rng.random() < 0.8), "has_chans": int(rng.random() < 0.8),
        "has_static": int(rng.random() < 0.8), "has_fm": int(rng.random() < 0.8),
        "newest_first": int(rng.random() < 0.5),
        "placement": int(rng.integers(0, max(cfg.n_placements, 1))),
        "now": now,
        "static": np.array([rng.integers(0, v) for v in cfg.static_vocab], np.int32),
        "fm": rng.normal(size=cfg.d_fm).astype(np.float32),
    }
    return case


def to_sequence(cfg, ids, case):
    """The reference's view: oldest first, ids mapped to rows."""
    items, times = case["items"], case["times"]
    types, chans = case["types"], case["chans"]
    if case["newest_first"]:
        items, times, types, chans = items[::-1], times[::-1], types[::-1], chans[::-1]
    pos = np.searchsorted(ids, items)
    pos_c = np.minimum(pos, len(ids) - 1)
    found = (pos < len(ids)) & (ids[pos_c] == items)
    rows = np.where(found, pos_c + cfg.item_first, cfg.item_unknown)
    seq = Sequence(rows=rows, times=times, now=case["now"],
                   types=types.astype(np.int64) if case["has_types"] else None,
                   channels=chans.astype(np.int64) if case["has_chans"] else None,
                   placement=case["placement"],
                   static=case["static"].astype(np.int64) if case["has_static"] else None,
                   fm=case["fm"].astype(np.float64) if case["has_fm"] and cfg.d_fm else None)
    return seq, int((~found).sum())


@torch.no_grad()
def write_cases(model_path, out_path, seed):
    model, ids, _ = load_pgf(model_path, double=True)
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, cfg, ids, i) for i in range(N_CASES)]
    R = cfg.n_items
    logits = np.zeros((N_CASES, R), np.float32)
    top_ids = np.full((N_CASES, TOP), -1, np.int64)
    top_scores = np.zeros((N_CASES, TOP), np.float32)
    top_count = np.zeros(N_CASES, np.int32)
    unknown = np.zeros(N_CASES, np.int32)
    eligible = np.zeros(N_CASES, np.int32)
    for i, case in enumerate(cases):
        seq, unknown[i] = to_sequence(cfg, ids, case)
        row = model.score([seq])[0].numpy()
        logits[i] = row
        skip = excluded_rows(cfg, seq)
        best = topk(row, TOP, skip)
        top_count[i] = len(best)
        top_ids[i, :len(best)] = ids[best - cfg.item_first]
        top_scores[i, :len(best)] = row[best]
        eligible[i] = R - len(skip | set(range(cfg.item_first)))
    w = pgf.Writer("fintrec_golden", os.path.basename(out_path))
    offsets = np.cumsum([0] + [len(c["items"]) for c in cases]).astype(np.int64)
    w.add("ev.offsets", offsets, pgf.I64)
    for key, dt in (("items", pgf.I64), ("times", pgf.I64), ("types", pgf.I32),
                    ("chans", pgf.I32)):
        w.add("ev." + key, np.concatenate([c[key] for c in cases]), dt)
    flags = [[c["has_types"], c["has_chans"], c["has_static"], c["has_fm"], c["newest_first"]]
             for c in cases]
    w.add("case.flags", np.array(flags, np.int32), pgf.I32)
    w.add("case.placement", np.array([c["placement"] for c in cases], np.int32), pgf.I32)
    w.add("case.now", np.array([c["now"] for c in cases], np.int64), pgf.I64)
    S = max(1, len(cfg.static_vocab))
    st = np.zeros((N_CASES, S), np.int32)
    fm = np.zeros((N_CASES, max(1, cfg.d_fm)), np.float32)
    for i, c in enumerate(cases):
        st[i, :len(c["static"])] = c["static"]
        fm[i, :len(c["fm"])] = c["fm"]
    w.add("case.static", st, pgf.I32)
    w.add("case.fm", fm)
    w.add("ref.logits", logits)
    w.add("ref.top_ids", top_ids, pgf.I64)
    w.add("ref.top_scores", top_scores)
    w.add("ref.top_count", top_count, pgf.I32)
    w.add("ref.unknown", unknown, pgf.I32)
    w.add("ref.eligible", eligible, pgf.I32)
    w.write(out_path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test/unit/golden/fintrec")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    names = []
    for seed, (name, cfg) in enumerate(RANDOM_MODELS.items()):
        rng = np.random.default_rng(100 + seed)
        ids = make_ids(rng, 300 + 37 * seed)
        cfg.n_items = cfg.item_first + len(ids)
        model = random_model(cfg, 200 + seed)
        write_pgf(model, ids, os.path.join(out, name + ".pgf"), name,
                  {"purpose": "parity test, random weights"})
        names.append(name)
    for name in ("fintrec_movielens", "fintrec_movielens_encoder"):
        src = os.path.join(ROOT, "demo/models", name + ".pgf")
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(out, name + ".pgf"))
            names.append(name)
    for seed, name in enumerate(names):
        write_cases(os.path.join(out, name + ".pgf"), os.path.join(out, name + ".cases.pgf"),
                    300 + seed)
    with open(os.path.join(out, "models.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print("golden_fintrec: %d models, %d requests each, in %s" % (len(names), N_CASES, out))


if __name__ == "__main__":
    main()
