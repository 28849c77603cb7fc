"""PyTorch reference data for test/unit/test_hiformer.c.

Writes into OUTDIR (git-ignored, made at test time by `make unit`):
  - <case>.pgf: small random-weight Hiformers (full rank post-LN GELU; low
    rank pre-LN ReLU; one low-rank layer with GELU-tanh and no dense item
    feature), their feature groups interleaved so that candidate-dependent
    tokens form several runs, plus the committed demo model when present;
  - <case>.rows.pgf: 1,000 candidate rows in requests of several sizes,
    each request with its user and context rows, every candidate's item row
    (or none), the counts of missing rows, missing values, NaN values and
    out-of-vocabulary codes the C side must report, and the probabilities
    tools/models/hiformer.py computes from the raw values (missing, NaN,
    out-of-vocabulary codes, integral floats as codes, multi-hot lists
    empty or long);
  - broken_*.pgf: files the binder must reject, with the expected message;
  - models.txt: "case pgf rows" per line; broken.txt: "pgf|message part".

Rows file: a .pgf (architecture "hiformer_golden") with the tensors
  dims      I64 [5]: requests, tasks, user, context and item features
  req.meta  I64 [requests, 8]: candidates, has user row, has context row,
            missing rows, missing values, NaN values, out-of-vocabulary
            codes, index of the request's first value
  req.found I32 [candidates of all requests]: the candidate has an item row
  req.probs F32 [candidates of all requests, tasks]
  val.kind  I32 [values]: 0 missing, 1 number, 2 code, 3 codes
  val.bits  I64 [values]: a number's IEEE-754 double bits, a code, or the
            offset of a list's first code in `codes`
  val.count I32 [values]: a list's length
  codes     I64 [codes + 1]: the lists' codes (one 0 after them, so that
            the tensor is never empty)
A request's values are its user row's (when present), its context row's,
then each candidate's item row that is present, in that order.
Values of a group are in the order the header lists that group's features.

    python3 test/gen/golden_hiformer.py test/unit/golden/hiformer
"""
import glob
import math
import os
import sys

import numpy as np
import torch

from tools import pgf
from tools.export import hiformer as exporter
from tools.models import hiformer as hf

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

C, D, M = hf.CATEGORICAL, hf.DENSE, hf.MULTI_HOT
REQUEST_SIZES = [1, 3, 40, 256, 300, 400]          # 1,000 candidates


def random_features(rng, spec):
    out = []
    for name, kind, group, vocab, log1p in spec:
        f = hf.Feature(name=name, kind=kind, group=group, vocab_size=vocab, log1p=log1p)
        if kind == D:
            f.mean = float(rng.normal(0, 1))
            f.std = float(rng.uniform(0.5, 2))
            f.default = float(rng.normal(0, 1))
            f.clip = float(rng.choice([0.0, 0.0, 3.0]))
        out.append(f)
    return out


FEATURES_A = [  # interleaved groups: item tokens are not one run
    ("u_cat", C, "user", 7, False), ("i_cat", C, "item", 11, False),
    ("u_dense", D, "user", 0, True), ("c_cat", C, "context", 5, False),
    ("i_genres", M, "item", 9, False), ("i_dense", D, "item", 0, False),
    ("u_cat2", C, "user", 4, False), ("c_dense", D, "context", 0, False),
    ("i_dense2", D, "item", 0, True), ("u_dense2", D, "user", 0, False),
]
FEATURES_C = [  # no dense item feature: the dense tokens are per request
    ("c_hour", C, "context", 25, False), ("u_dense", D, "user", 0, False),
    ("i_cat", C, "item", 13, False), ("u_top", C, "user", 6, False),
    ("i_tags", M, "item", 17, False), ("u_dense2", D, "user", 0, True),
]

CASES = [
    ("full", FEATURES_A, dict(n_dense_tokens=2, n_tasks=2, d_model=16, n_heads=2,
                              head_dim=8, d_ff=24, n_layers=2, rank_k=0, rank_v=0,
                              prenorm=False, activation="gelu", tower_sizes=[16],
                              task_names=["click", "install"])),
    ("lowrank", FEATURES_A, dict(n_dense_tokens=3, n_tasks=1, d_model=16, n_heads=4,
                                 head_dim=4, d_ff=32, n_layers=3, rank_k=6, rank_v=12,
                                 prenorm=True, activation="relu", tower_sizes=[8, 4])),
    ("onelayer", FEATURES_C, dict(n_dense_tokens=1, n_tasks=3, d_model=8, n_heads=2,
                                  head_dim=6, d_ff=16, n_layers=1, rank_k=5, rank_v=7,
                                  prenorm=False, activation="gelu_tanh", tower_sizes=[],
                                  task_names=["a", "b", "c"])),
]


def randomise(model, rng):
    """Moves every parameter off its initial value (biases, norms too)."""
    g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name.endswith("bias"):
                p.add_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def random_value(rng, f):
    u = rng.random()
    if f.kind == D:
        if u < 0.08:
            return None
        if u < 0.13:
            return float(rng.choice([math.nan, math.inf, -math.inf]))
        if u < 0.18:
            return int(rng.integers(-3, 50))               # a code where a number goes
        if u < 0.21:
            return float(rng.choice([-1e3, 1e3, -0.5]))      # far out, or clamped by log1p
        v = f.mean + f.std * rng.normal(0, 1.5)             # a plausible transformed value
        return float(np.expm1(v)) if f.log1p else float(v)
    if u < 0.08:
        return None
    if u < 0.11:
        return math.nan
    if u < 0.18:
        return int(rng.choice([-1, f.vocab_size, f.vocab_size + 7, -(1 << 40)]))
    if u < 0.25:
        return float(rng.integers(0, f.vocab_size))         # integral float
    if f.kind == M and u < 0.85:
        n = int(rng.choice([0, 1, 2, 3, 5, 8]))
        codes = [int(rng.integers(0, f.vocab_size)) for _ in range(n)]
        if n and rng.random() < 0.2:
            codes[0] = f.vocab_size + 3                     # one unknown code
        return codes
    return int(rng.integers(0, f.vocab_size))


class Values:
    """The val.* and codes tensors of a rows file, appended to in order."""

    def __init__(self):
        self.kind, self.bits, self.count, self.codes = [], [], [], []

    def add(self, v):
        if v is None:
            self.kind.append(0), self.bits.append(0), self.count.append(0)
        elif isinstance(v, float):
            bits = int(np.array([v], "<f8").view("<i8")[0])
            self.kind.append(1), self.bits.append(bits), self.count.append(0)
        elif isinstance(v, int):
            self.kind.append(2), self.bits.append(v), self.count.append(0)
        else:
            self.kind.append(3), self.bits.append(len(self.codes)), self.count.append(len(v))
            self.codes.extend(v)


def counts_of(features, row):
    """missing / nan / oov counts of one present row (encode_rows' counting)."""
    return hf.encode_rows(features, [row])[3]


def make_rows(model, features, rng, path):
    by_group = {g: [f for f in features if f.group == g] for g in hf.GROUPS}
    values = Values()
    meta, found, probs = [], [], []
    for n in REQUEST_SIZES:
        counts = {"rows": 0, "missing": 0, "nan": 0, "oov": 0}
        shared = {}
        present = {}
        first = len(values.kind)
        for g in ("user", "context"):
            present[g] = bool(by_group[g]) and rng.random() > 0.15
            row = {f.name: random_value(rng, f) for f in by_group[g]} if present[g] else {}
            if present[g]:
                for k, v in counts_of(by_group[g], row).items():
                    counts[k] += v
            elif by_group[g]:
                counts["rows"] += 1
            shared.update(row)
            present[g + "_row"] = row
        for g in ("user", "context"):
            if present[g]:
                for f in by_group[g]:
                    values.add(present[g + "_row"][f.name])
        rows = []
        for _ in range(n):
            has = rng.random() > 0.1
            item = {f.name: random_value(rng, f) for f in by_group["item"]} if has else {}
            found.append(int(has))
            if has:
                for f in by_group["item"]:
                    values.add(item[f.name])
                for k, v in counts_of(by_group["item"], item).items():
                    counts[k] += v
            else:
                counts["rows"] += 1
            rows.append({**shared, **item})
        codes, weights, dense, _ = hf.encode_rows(features, rows)
        with torch.no_grad():
            probs.append(model(codes, weights, dense).numpy().astype("<f4"))
        meta.append([n, int(present["user"]), int(present["context"]), counts["rows"],
                     counts["missing"], counts["nan"], counts["oov"], first])
    w = pgf.Writer("hiformer_golden", os.path.basename(path))
    w.add("dims", np.array([len(REQUEST_SIZES), model.c.n_tasks, len(by_group["user"]),
                            len(by_group["context"]), len(by_group["item"])], np.int64), pgf.I64)
    w.add("req.meta", np.array(meta, np.int64), pgf.I64)
    w.add("req.found", np.array(found, np.int32), pgf.I32)
    w.add("req.probs", np.concatenate(probs))
    w.add("val.kind", np.array(values.kind, np.int32), pgf.I32)
    w.add("val.bits", np.array(values.bits, np.int64), pgf.I64)
    w.add("val.count", np.array(values.count, np.int32), pgf.I32)
    w.add("codes", np.array(values.codes + [0], np.int64), pgf.I64)
    w.write(path)


def write_broken(outdir, model, features):
    """Files the binder must reject, and the message part it must give."""
    broken = []

    def variant(tag, message, edit, tensors=None):
        path = os.path.join(outdir, "broken_%s.pgf" % tag)
        exporter.export(model, features, path, "broken")
        m = pgf.read(path)
        w = pgf.Writer("hiformer", "broken")
        w.header.CopyFrom(m.header)
        del w.header.tensors[:]
        edit(w.header)
        for name, arr in (tensors or m.tensors).items():
            w.add(name, np.array(arr))
        w.write(path)
        broken.append("%s|%s" % (path, message))

    def bad_group(h):
        h.features[0].group = "shop"

    def bad_vocab(h):
        h.features[0].vocab_size += 1

    def bad_names(h):
        h.hiformer.task_names.append("extra")

    def bad_std(h):
        for f in h.features:
            if f.kind == pgf.pb.DENSE:
                f.std = 0
                break

    def bad_activation(h):
        h.hiformer.activation = pgf.pb.SWIGLU

    tensors = dict(pgf.read(os.path.join(outdir, "full.pgf")).tensors)
    del tensors["hif.l1.attn.k.full"]
    variant("group", "has group \"shop\"", bad_group)
    variant("vocab", "hif.emb.cat.0.weight", bad_vocab)
    variant("names", "task names", bad_names)
    variant("std", "positive std", bad_std)
    variant("activation", "activation", bad_activation)
    variant("tensor", "hif.l1.attn.k.full\" is missing", lambda h: None, tensors)
    with open(os.path.join(outdir, "broken.txt"), "w") as f:
        f.write("\n".join(broken) + "\n")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "test/unit/golden/hiformer"
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(20231109)
    manifest = []
    first = None
    for name, spec, kw in CASES:
        feats = random_features(rng, spec)
        model = hf.Hiformer(hf.config_for(feats, **kw))
        randomise(model, rng)
        model.eval()
        path = os.path.join(outdir, name + ".pgf")
        exporter.export(model, feats, path, name)
        # Reference inputs from the features as stored (f32 constants).
        _, stored = hf.load_pgf(path)
        make_rows(model, stored, rng, os.path.join(outdir, name + ".rows.pgf"))
        manifest.append("%s %s %s" % (name, path, os.path.join(outdir, name + ".rows.pgf")))
        if first is None:
            first = (model, feats)
    for path in sorted(glob.glob(os.path.join(_ROOT, "demo", "models", "hiformer*.pgf"))):
        model, feats = hf.load_pgf(path)
        name = os.path.splitext(os.path.basename(path))[0]
        make_rows(model, feats, rng, os.path.join(outdir, name + ".rows.pgf"))
        manifest.append("%s %s %s" % (name, os.path.normpath(path),
                                      os.path.join(outdir, name + ".rows.pgf")))
    write_broken(outdir, *first)
    with open(os.path.join(outdir, "models.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print("golden_hiformer: %d models, %d rows each, in %s"
          % (len(manifest), sum(REQUEST_SIZES), outdir))


if __name__ == "__main__":
    main()
