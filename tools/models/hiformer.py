"""The PyTorch reference of the Hiformer ranker (design:
docs/hiformer.md) and of its input encoding.

What it owns:
  - HiformerConfig and Feature: the architecture's hyperparameters and one
    input feature's spec (what proto/model.proto's HiformerConfig and
    FeatureSpec hold);
  - encode_rows(): raw feature values (None for SQL NULL, floats that may be
    NaN, integer codes, lists of codes) -> model inputs, with the rules the C
    model (models/hiformer.c) follows: missing or NaN dense -> the feature's
    default, codes outside [0, vocab) -> the unknown row 0, missing
    categorical -> row 0, multi-hot = mean of the rows of its codes;
  - Hiformer: the model.  Tokens are [categorical features in spec order;
    n_D dense tokens; t task tokens].  Per layer: per-token queries,
    composite keys and values over the flattened token matrix (full rank or
    joint low rank x.U then .V^T), softmax attention without mask, a
    per-token output projection, post-LN (or pre-LN with a final LN),
    per-token feed-forward.  Task token k after the last layer goes through
    MLP tower k (ReLU between layers) and a sigmoid;
  - state_to_tensors() / tensors_to_state(): the module's parameters under
    the .pgf tensor names documented in models/hiformer.h;
  - load_pgf(): a Hiformer and its features rebuilt from a .pgf file.

Linear weights are [out, in] (y = x W^T + b) everywhere, per-token weights
are [T, out, in].
"""
import math
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CATEGORICAL, DENSE, MULTI_HOT = "categorical", "dense", "multi_hot"
GROUPS = ("user", "context", "item")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")


@dataclass
class Feature:
    """One input feature.  Dense values are transformed as
    v = log1p(max(x, 0)) when log1p else x, then z = (v - mean) / std,
    clipped to [-clip, clip] when clip > 0; a missing or NaN x is replaced
    by `default` (a raw value) first."""
    name: str
    kind: str                   # CATEGORICAL, DENSE, MULTI_HOT
    group: str                  # "user", "context", "item"
    vocab_size: int = 0         # categorical/multi-hot: rows, 0 = unknown
    default: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    log1p: bool = False
    categories: List[str] = field(default_factory=list)  # names of codes 1..n
    clip: float = 0.0


@dataclass
class HiformerConfig:
    n_categorical: int
    n_dense: int
    n_dense_tokens: int
    n_tasks: int = 1
    d_model: int = 32
    n_heads: int = 2
    head_dim: int = 16
    d_ff: int = 64
    n_layers: int = 2
    rank_k: int = 0             # 0: full-rank composite projection
    rank_v: int = 0
    prenorm: bool = False
    activation: str = "gelu"    # gelu (erf), gelu_tanh, relu
    norm_eps: float = 1e-5
    tower_sizes: List[int] = field(default_factory=lambda: [32])
    vocab_sizes: List[int] = field(default_factory=list)   # per categorical
    task_names: List[str] = field(default_factory=list)
    dropout: float = 0.0

    @property
    def n_feature_tokens(self):
        return self.n_categorical + self.n_dense_tokens

    @property
    def n_tokens(self):
        return self.n_feature_tokens + self.n_tasks


def config_for(features, **kw):
    """A HiformerConfig whose inputs are `features` (in token order)."""
    cats = [f for f in features if f.kind != DENSE]
    dense = [f for f in features if f.kind == DENSE]
    return HiformerConfig(n_categorical=len(cats), n_dense=len(dense),
                          vocab_sizes=[f.vocab_size for f in cats], **kw)


# ---- input encoding (the reference for models/hiformer.c) -----------------

def _is_missing_number(x):
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def _code(value, vocab):
    """(row, oov?) for one categorical code; value is an int or a float."""
    if isinstance(value, float):
        if value != math.floor(value):
            raise ValueError("categorical value %r is not an integer" % value)
        value = int(value)
    if 0 <= value < vocab:
        return value, False
    return 0, True


def encode_rows(features, rows):
    """rows: list of dicts name -> value (absent or None: missing).

    Returns (codes, weights, dense, counts): codes[i] is a LongTensor
    [B, M_i] of table rows for categorical feature i (token order), weights[i]
    [B, M_i] the averaging weights (1/m over the m codes of a multi-hot value,
    0 for padding), dense a FloatTensor [B, |D|] of normalised values, and
    counts a dict of missing / nan / oov totals."""
    cats = [f for f in features if f.kind != DENSE]
    dense = [f for f in features if f.kind == DENSE]
    counts = {"missing": 0, "nan": 0, "oov": 0}
    b = len(rows)
    codes, weights = [], []
    for f in cats:
        per_row = []
        for row in rows:
            value = row.get(f.name)
            if value is None:
                counts["missing"] += 1
                per_row.append([0])
                continue
            if isinstance(value, float) and not math.isfinite(value):
                counts["nan"] += 1
                per_row.append([0])
                continue
            if isinstance(value, (list, tuple, np.ndarray)):
                if f.kind != MULTI_HOT:
                    raise ValueError("feature %s takes one code, got a list" % f.name)
                got = []
                for v in value:
                    c, oov = _code(int(v), f.vocab_size)
                    counts["oov"] += oov
                    got.append(c)
                per_row.append(got or [0])
            else:
                c, oov = _code(value, f.vocab_size)
                counts["oov"] += oov
                per_row.append([c])
        m = max(len(r) for r in per_row) if per_row else 1
        c_t = torch.zeros(b, m, dtype=torch.long)
        w_t = torch.zeros(b, m)
        for i, r in enumerate(per_row):
            c_t[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            w_t[i, :len(r)] = 1.0 / len(r)
        codes.append(c_t)
        weights.append(w_t)
    z = np.zeros((b, len(dense)), dtype=np.float64)
    for j, f in enumerate(dense):
        for i, row in enumerate(rows):
            x = row.get(f.name)
            if x is None:
                counts["missing"] += 1
                x = f.default
            elif isinstance(x, (list, tuple, np.ndarray)):
                raise ValueError("feature %s is dense, got a list" % f.name)
            else:
                x = float(x)
                if not math.isfinite(x):
                    counts["nan"] += 1
                    x = f.default
            v = math.log1p(max(x, 0.0)) if f.log1p else x
            z[i, j] = (v - f.mean) / f.std
            if f.clip > 0:
                z[i, j] = min(max(z[i, j], -f.clip), f.clip)
    return codes, weights, torch.tensor(z, dtype=torch.float32), counts


def encode_arrays(features, columns):
    """Vectorised encode for training: columns maps name -> numpy array
    (dense: float with NaN for missing; categorical: int codes; multi-hot:
    int matrix [B, M] padded with -1).  Returns (codes, weights, dense)."""
    codes, weights, zs = [], [], []
    for f in features:
        col = columns[f.name]
        if f.kind == DENSE:
            x = np.asarray(col, dtype=np.float64)
            x = np.where(np.isfinite(x), x, f.default)
            v = np.log1p(np.maximum(x, 0.0)) if f.log1p else x
            z = (v - f.mean) / f.std
            zs.append(np.clip(z, -f.clip, f.clip) if f.clip > 0 else z)
        elif f.kind == CATEGORICAL:
            c = np.asarray(col, dtype=np.int64)
            c = np.where((c >= 0) & (c < f.vocab_size), c, 0)
            codes.append(torch.from_numpy(c[:, None].copy()))
            weights.append(torch.ones(len(c), 1))
        else:
            c = np.asarray(col, dtype=np.int64)
            valid = c != -1
            c = np.where((c >= 0) & (c < f.vocab_size), c, 0)
            n = valid.sum(1, keepdims=True)
            empty = (n[:, 0] == 0)
            c[empty, 0] = 0
            valid[empty, 0] = True
            n = np.maximum(n, 1)
            codes.append(torch.from_numpy(np.where(valid, c, 0)))
            weights.append(torch.from_numpy((valid / n).astype(np.float32)))
    z = np.stack(zs, 1) if zs else np.zeros((len(next(iter(columns.values()))), 0))
    return codes, weights, torch.tensor(z, dtype=torch.float32)


# ---- the model -------------------------------------------------------------

class Composite(nn.Module):
    """x_flat [B, T*d] -> [B, T*H*dk]: full (rank 0) or x.down^T.up^T, + bias."""

    def __init__(self, n_in, n_out, rank):
        super().__init__()
        self.rank = rank
        if rank:
            self.down = nn.Parameter(torch.randn(rank, n_in) / math.sqrt(n_in))
            self.up = nn.Parameter(torch.randn(n_out, rank) / math.sqrt(rank))
        else:
            self.full = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        if self.rank:
            return (x @ self.down.t()) @ self.up.t() + self.bias
        return x @ self.full.t() + self.bias


class PerToken(nn.Module):
    """One linear layer per token: x [B, T, in] -> [B, T, out]."""

    def __init__(self, t, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(t, n_out, n_in) / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(t, n_out))

    def forward(self, x):
        return torch.einsum("bti,toi->bto", x, self.weight) + self.bias


class HiformerLayer(nn.Module):
    def __init__(self, c: HiformerConfig):
        super().__init__()
        t, d, hd = c.n_tokens, c.d_model, c.n_heads * c.head_dim
        self.c = c
        self.q = PerToken(t, d, hd)
        self.k = Composite(t * d, t * hd, c.rank_k)
        self.v = Composite(t * d, t * hd, c.rank_v)
        self.o = PerToken(t, hd, d)
        self.ln1 = nn.LayerNorm(d, eps=c.norm_eps)
        self.ln2 = nn.LayerNorm(d, eps=c.norm_eps)
        self.w1 = PerToken(t, d, c.d_ff)
        self.w2 = PerToken(t, c.d_ff, d)
        self.drop = nn.Dropout(c.dropout)

    def act(self, x):
        if self.c.activation == "relu":
            return F.relu(x)
        if self.c.activation == "gelu_tanh":
            return F.gelu(x, approximate="tanh")
        return F.gelu(x)

    def attention(self, x):
        c = self.c
        b, t, d = x.shape
        h, dk = c.n_heads, c.head_dim
        q = self.q(x).view(b, t, h, dk).transpose(1, 2)              # [B,H,T,dk]
        flat = x.reshape(b, t * d)
        k = self.k(flat).view(b, t, h, dk).transpose(1, 2)
        v = self.v(flat).view(b, t, h, dk).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dk), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, t, h * dk)
        return self.o(o)

    def ffn(self, x):
        return self.w2(self.drop(self.act(self.w1(x))))

    def forward(self, x):
        if self.c.prenorm:
            x = x + self.drop(self.attention(self.ln1(x)))
            return x + self.drop(self.ffn(self.ln2(x)))
        x = self.ln1(x + self.drop(self.attention(x)))
        return self.ln2(x + self.drop(self.ffn(x)))


class Hiformer(nn.Module):
    def __init__(self, c: HiformerConfig):
        super().__init__()
        if c.n_dense_tokens and not c.n_dense:
            raise ValueError("dense tokens need dense features")
        if c.activation not in ACTIVATIONS:
            raise ValueError("activation must be one of %s" % (ACTIVATIONS,))
        self.c = c
        d = c.d_model
        self.emb = nn.ModuleList(nn.Embedding(v, d) for v in c.vocab_sizes)
        for e in self.emb:
            nn.init.normal_(e.weight, std=0.1)
        if c.n_dense_tokens:
            self.dense = nn.Linear(c.n_dense, c.n_dense_tokens * d)
        self.task_tokens = nn.Parameter(torch.randn(c.n_tasks, d) * 0.1)
        self.layers = nn.ModuleList(HiformerLayer(c) for _ in range(c.n_layers))
        if c.prenorm:
            self.lnf = nn.LayerNorm(d, eps=c.norm_eps)
        self.towers = nn.ModuleList()
        for _ in range(c.n_tasks):
            sizes = [d] + list(c.tower_sizes) + [1]
            self.towers.append(nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])))

    def tokens(self, codes, weights, dense):
        """X0 [B, T, d] from encoded inputs (see encode_rows)."""
        c = self.c
        parts = []
        for e, cd, w in zip(self.emb, codes, weights):
            parts.append((e(cd) * w.unsqueeze(-1)).sum(1, keepdim=True))
        b = dense.shape[0]
        if c.n_dense_tokens:
            parts.append(self.dense(dense).view(b, c.n_dense_tokens, c.d_model))
        parts.append(self.task_tokens.unsqueeze(0).expand(b, -1, -1))
        return torch.cat(parts, 1)

    def logits(self, codes, weights, dense):
        x = self.tokens(codes, weights, dense)
        for layer in self.layers:
            x = layer(x)
        if self.c.prenorm:
            x = self.lnf(x)
        out = []
        for k, tower in enumerate(self.towers):
            h = x[:, self.c.n_feature_tokens + k]
            for m, lin in enumerate(tower):
                h = lin(h)
                if m + 1 < len(tower):
                    h = F.relu(h)
            out.append(h[:, 0])
        return torch.stack(out, 1)                                  # [B, t]

    def forward(self, codes, weights, dense):
        return torch.sigmoid(self.logits(codes, weights, dense))


# ---- tensor names -----------------------------------------------------------

def state_to_tensors(model: Hiformer):
    """name -> float32 numpy array, in the .pgf naming of models/hiformer.h."""
    c = model.c
    out = {}

    def put(name, t):
        out[name] = t.detach().cpu().float().numpy().copy()

    for i, e in enumerate(model.emb):
        put("hif.emb.cat.%d.weight" % i, e.weight)
    if c.n_dense_tokens:
        put("hif.emb.dense.weight", model.dense.weight)
        put("hif.emb.dense.bias", model.dense.bias)
    put("hif.task_tokens", model.task_tokens)
    for l, layer in enumerate(model.layers):
        p = "hif.l%d." % l
        put(p + "attn.q.weight", layer.q.weight)
        put(p + "attn.q.bias", layer.q.bias)
        for part, comp in (("k", layer.k), ("v", layer.v)):
            if comp.rank:
                put(p + "attn.%s.down" % part, comp.down)
                put(p + "attn.%s.up" % part, comp.up)
            else:
                put(p + "attn.%s.full" % part, comp.full)
            put(p + "attn.%s.bias" % part, comp.bias)
        put(p + "attn.o.weight", layer.o.weight)
        put(p + "attn.o.bias", layer.o.bias)
        for ln in ("ln1", "ln2"):
            put(p + ln + ".gamma", getattr(layer, ln).weight)
            put(p + ln + ".beta", getattr(layer, ln).bias)
        put(p + "ffn.w1", layer.w1.weight)
        put(p + "ffn.b1", layer.w1.bias)
        put(p + "ffn.w2", layer.w2.weight)
        put(p + "ffn.b2", layer.w2.bias)
    if c.prenorm:
        put("hif.lnf.gamma", model.lnf.weight)
        put("hif.lnf.beta", model.lnf.bias)
    for k, tower in enumerate(model.towers):
        for m, lin in enumerate(tower):
            put("hif.head.%d.fc%d.weight" % (k, m), lin.weight)
            put("hif.head.%d.fc%d.bias" % (k, m), lin.bias)
    return out


def tensors_to_state(model: Hiformer, tensors):
    """Loads name -> array (as state_to_tensors writes) into model."""
    mine = state_to_tensors(model)
    missing = set(mine) - set(tensors)
    if missing:
        raise ValueError("tensors missing: %s" % sorted(missing)[:5])
    params = {}
    c = model.c
    for i, e in enumerate(model.emb):
        params["hif.emb.cat.%d.weight" % i] = e.weight
    if c.n_dense_tokens:
        params["hif.emb.dense.weight"] = model.dense.weight
        params["hif.emb.dense.bias"] = model.dense.bias
    params["hif.task_tokens"] = model.task_tokens
    for l, layer in enumerate(model.layers):
        p = "hif.l%d." % l
        params[p + "attn.q.weight"] = layer.q.weight
        params[p + "attn.q.bias"] = layer.q.bias
        for part, comp in (("k", layer.k), ("v", layer.v)):
            if comp.rank:
                params[p + "attn.%s.down" % part] = comp.down
                params[p + "attn.%s.up" % part] = comp.up
            else:
                params[p + "attn.%s.full" % part] = comp.full
            params[p + "attn.%s.bias" % part] = comp.bias
        params[p + "attn.o.weight"] = layer.o.weight
        params[p + "attn.o.bias"] = layer.o.bias
        for ln in ("ln1", "ln2"):
            params[p + ln + ".gamma"] = getattr(layer, ln).weight
            params[p + ln + ".beta"] = getattr(layer, ln).bias
        params[p + "ffn.w1"] = layer.w1.weight
        params[p + "ffn.b1"] = layer.w1.bias
        params[p + "ffn.w2"] = layer.w2.weight
        params[p + "ffn.b2"] = layer.w2.bias
    if c.prenorm:
        params["hif.lnf.gamma"] = model.lnf.weight
        params["hif.lnf.beta"] = model.lnf.bias
    for k, tower in enumerate(model.towers):
        for m, lin in enumerate(tower):
            params["hif.head.%d.fc%d.weight" % (k, m)] = lin.weight
            params["hif.head.%d.fc%d.bias" % (k, m)] = lin.bias
    with torch.no_grad():
        for name, p in params.items():
            src = torch.tensor(np.array(tensors[name], dtype=np.float32))
            if tuple(src.shape) != tuple(p.shape):
                raise ValueError("%s: shape %s, expected %s"
                                 % (name, tuple(src.shape), tuple(p.shape)))
            p.copy_(src)


def load_pgf(path):
    """(Hiformer in eval mode, [Feature]) rebuilt from a .pgf file."""
    from tools import pgf
    m = pgf.read(path)
    h = m.header
    if h.architecture != "hiformer":
        raise ValueError("%s is a %s model, not hiformer" % (path, h.architecture))
    hc = h.hiformer
    features = []
    kinds = {pgf.pb.CATEGORICAL: CATEGORICAL, pgf.pb.DENSE: DENSE,
             pgf.pb.MULTI_HOT: MULTI_HOT}
    for fs in h.features:
        features.append(Feature(name=fs.name, kind=kinds[fs.kind], group=fs.group,
                                vocab_size=fs.vocab_size, default=fs.default_value,
                                mean=fs.mean, std=fs.std, log1p=fs.log1p,
                                categories=list(fs.categories), clip=fs.clip))
    act = {pgf.pb.GELU_ERF: "gelu", pgf.pb.GELU_TANH: "gelu_tanh",
           pgf.pb.RELU: "relu"}[hc.activation]
    c = config_for(features, n_dense_tokens=hc.n_dense_tokens, n_tasks=hc.n_tasks,
                   d_model=hc.d_model, n_heads=hc.n_heads, head_dim=hc.head_dim,
                   d_ff=hc.d_ff, n_layers=hc.n_layers, rank_k=hc.rank_k,
                   rank_v=hc.rank_v, prenorm=hc.norm_placement == pgf.pb.PRE_NORM,
                   activation=act, norm_eps=hc.norm_eps,
                   tower_sizes=list(hc.tower_sizes), task_names=list(hc.task_names))
    model = Hiformer(c)
    tensors_to_state(model, {k: np.asarray(v, dtype=np.float32)
                             for k, v in m.tensors.items()})
    model.eval()
    return model, features
