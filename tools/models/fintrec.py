"""The PyTorch reference of the FinTRec sequence recommender.

This is the model the C code (models/fintrec.c) must reproduce, written
independently of it, and the model the training script fits.  Design:
docs/fintrec.md.

One user request is a *sequence*:

    [FM token] [static tokens] [event tokens, oldest first] [query token]

  event token  E_item[row] (* sqrt(d) with scale_embeddings)
               + E_evt[type] + E_chan[channel] + TE(t_event) + P[position]
  static k     E_sfield[k] + E_sval_k[value_k]          (prefix tokens)
  FM token     W_fm f + b_fm                            (prefix token)
  query token  e_q + E_place[placement] + TE(t_now) + P[n_events]

TE(t) = W_te [sin/cos 2pi hour/24, sin/cos 2pi dow/7, sin/cos 2pi (dom-1)/31,
sin/cos 2pi (month-1)/12, log1p(dt_prev / 1 h)], in UTC, where hour is
fractional, dow counts from Monday = 0, and dt_prev is the time since the
previous event of the sequence (0 for the first event, never negative).
For the query token dt_prev is now - t_last_event.  An event token never
depends on "now", so a causal model's event states can be cached.

Positions (learned_positions) count from the oldest event kept: event i of
n is P[i], the query is P[n]; prefix tokens get none.

Attention: pre-LN blocks (models/transformer.h naming, prefix fin.dec or
fin.enc).  Decoder: prefix-LM mask (prefix tokens are seen by every token
and see each other; events see earlier events; the query sees everything).
Encoder: bidirectional.  Attention bias between two timed tokens (events
and the query, whose time is now; 0 when either is a prefix token): head h
adds -slope_h * D_ij with the distance
    D_ij = |t_i - t_j| / tau          (time_bias: TimeAliBi)
         + index_bias * |p_i - p_j|   (index_bias > 0: ALiBi over positions)
where p is the position above (event i at i, the query at n).  Both terms
are relative, so cached event states stay valid; the index term tells the
query which events are the latest even within a burst of equal times.

Read-out: h_u = LN_f(output of the query token).  With readout_last_event
(plain SASRec) there is no query token and h_u is the output of the last
token (zeros when the sequence is empty).

Scoring every item row a:
    logit_a = (W_c h_u) . T[a] + beta_a + beta_place[placement]
T is the input item table when tied_item_table, else its own table; W_c,
beta_a and beta_place are switched by score_transform, item_bias and
placement_bias.

Item rows: item_pad (never an input, never a result), item_unknown (ids the
model does not know), real items from item_first on.  Event type 0 and
channel 0 are "unspecified" by convention.

Plain SASRec (Kang & McAuley; pmixer/SASRec.pytorch with norm_first) is
Config(readout_last_event=True, learned_positions=True,
scale_embeddings=True, tied_item_table=True, score_transform=False,
item_bias=False, placement_bias=False, time_encoding=False,
time_bias=False, activation="relu", n_event_types=0, n_channels=0).
"""
import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TIME_FEATURES = 9
ACTIVATIONS = ("gelu_erf", "gelu_tanh", "relu")


@dataclass
class Config:
    variant: str = "decoder"            # "decoder" (pCTR) or "encoder" (pCVR)
    n_items: int = 3                    # item-table rows, pad and unknown included
    item_pad: int = 0
    item_unknown: int = 1
    item_first: int = 2
    n_event_types: int = 0              # 0: no event-type embedding
    n_channels: int = 0                 # 0: no channel embedding
    n_placements: int = 1
    static_vocab: tuple = ()            # one vocabulary size per static token
    d_fm: int = 0                       # 0: no foundation-model token
    max_events: int = 200
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    activation: str = "gelu_erf"
    norm_eps: float = 1e-5
    time_encoding: bool = True
    time_bias: bool = True
    time_bias_tau: float = 86400.0      # seconds
    index_bias: float = 0.0             # weight of |p_i - p_j| in the bias distance
    learned_positions: bool = False
    scale_embeddings: bool = False
    tied_item_table: bool = True
    score_transform: bool = True
    item_bias: bool = True
    placement_bias: bool = True
    readout_last_event: bool = False
    dropout: float = 0.0                # training only

    @property
    def has_bias(self):
        return self.time_bias or self.index_bias > 0

    @property
    def n_prefix(self):
        return (1 if self.d_fm else 0) + len(self.static_vocab)

    @property
    def stack_prefix(self):
        return "fin.dec" if self.variant == "decoder" else "fin.enc"

    @property
    def head_prefix(self):
        return "fin.ctr" if self.variant == "decoder" else "fin.cvr"

    def as_dict(self):
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["static_vocab"] = list(self.static_vocab)
        return out


# ---- time features ---------------------------------------------------------

def civil_from_days(days):
    """(year, month 1..12, day 1..31) of days since 1970-01-01 (proleptic
    Gregorian; H. Hinnant's algorithm), vectorised over int64 arrays."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def time_features(t, dt_prev):
    """float64 [n, 9]: calendar features of unix seconds t (UTC) and
    log1p(dt_prev / 1 h); dt_prev is clamped at 0."""
    t = np.asarray(t, dtype=np.int64)
    days = np.floor_divide(t, 86400)
    hour = (t - days * 86400) / 3600.0
    dow = np.mod(days + 3, 7).astype(np.float64)
    _, month, dom = civil_from_days(days)
    two_pi = 2.0 * math.pi
    angles = [two_pi * hour / 24.0, two_pi * dow / 7.0,
              two_pi * (dom - 1) / 31.0, two_pi * (month - 1) / 12.0]
    cols = []
    for a in angles:
        cols += [np.sin(a), np.cos(a)]
    gap = np.maximum(np.asarray(dt_prev, dtype=np.float64), 0.0)
    cols.append(np.log1p(gap / 3600.0))
    return np.stack(cols, axis=-1) if t.size else np.zeros((0, TIME_FEATURES))


def alibi_slopes(n_heads):
    return [2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)]


# ---- sequences -------------------------------------------------------------

@dataclass
class Sequence:
    """One user's request, events oldest first, item rows already mapped."""
    rows: np.ndarray                    # int64 [n] item-table rows
    times: np.ndarray                   # int64 [n] unix seconds
    now: int = 0                        # the query token's time
    types: np.ndarray = None            # int64 [n] or None (type 0)
    channels: np.ndarray = None         # int64 [n] or None (channel 0)
    placement: int = 0
    static: np.ndarray = None           # int64 [n_static] or None (all 0)
    fm: np.ndarray = None               # float [d_fm] or None (zeros)
    # Training: the item row each query should predict; with several
    # targets the decoder interleaves one query after each event (below).
    targets: np.ndarray = None


# Token kinds.
PAD, FM, STATIC, EVENT, QUERY = 0, 1, 2, 3, 4


def build(cfg, seq, query_times=None):
    """Token table of one sequence.

    query_times None: serving layout, one query (time seq.now) after the
    events (truncated to the newest max_events).  Otherwise (decoder
    training) a query before every event and one after the last:
    query_times has n + 1 entries, query i (after i events) at time
    query_times[i].
    Returns dict of numpy arrays over L tokens: kind, row, type, chan, pos,
    time (int64), timed (bool), horizon (queries/events: how many events
    they may see / their own index), static_k, static_v, tf [L, 9].
    """
    n_all = len(seq.rows)
    keep = n_all if query_times is not None else min(n_all, cfg.max_events)
    start = n_all - keep
    rows = np.asarray(seq.rows, dtype=np.int64)[start:]
    times = np.asarray(seq.times, dtype=np.int64)[start:]
    types = (np.zeros(keep, np.int64) if seq.types is None
             else np.asarray(seq.types, dtype=np.int64)[start:])
    chans = (np.zeros(keep, np.int64) if seq.channels is None
             else np.asarray(seq.channels, dtype=np.int64)[start:])
    n = keep
    use_query = not cfg.readout_last_event

    kinds, rws, tps, chs, pos, tms, timed, horizon, sk, sv = ([] for _ in range(10))
    tf_t, tf_gap = [], []

    def add(kind, row=0, tp=0, ch=0, p=0, tm=0, is_timed=False, hz=-1, k=-1, v=0,
            gap=0):
        kinds.append(kind); rws.append(row); tps.append(tp); chs.append(ch)
        pos.append(p); tms.append(tm); timed.append(is_timed); horizon.append(hz)
        sk.append(k); sv.append(v); tf_t.append(tm); tf_gap.append(gap)

    if cfg.d_fm:
        add(FM)
    static = (np.zeros(len(cfg.static_vocab), np.int64) if seq.static is None
              else np.asarray(seq.static, dtype=np.int64))
    for k in range(len(cfg.static_vocab)):
        add(STATIC, k=k, v=int(static[k]))

    def gap_before(i):
        return 0 if i == 0 else int(times[i]) - int(times[i - 1])

    def add_query(i, t_now):
        gap = 0 if i == 0 else int(t_now) - int(times[i - 1])
        add(QUERY, p=i, tm=int(t_now), is_timed=True, hz=i, gap=gap)

    for i in range(n):
        if query_times is not None and use_query:
            add_query(i, query_times[i])
        add(EVENT, row=int(rows[i]), tp=int(types[i]), ch=int(chans[i]), p=i,
            tm=int(times[i]), is_timed=True, hz=i, gap=gap_before(i))
    if use_query:
        add_query(n, seq.now if query_times is None else query_times[n])

    out = {
        "kind": np.array(kinds, np.int64), "row": np.array(rws, np.int64),
        "type": np.array(tps, np.int64), "chan": np.array(chs, np.int64),
        "pos": np.array(pos, np.int64), "time": np.array(tms, np.int64),
        "timed": np.array(timed, bool), "horizon": np.array(horizon, np.int64),
        "static_k": np.array(sk, np.int64), "static_v": np.array(sv, np.int64),
    }
    out["tf"] = time_features(np.array(tf_t, np.int64), np.array(tf_gap, np.int64))
    return out


def visibility(cfg, lay):
    """bool [L, L]: may query token i see key token j."""
    kind = lay["kind"]
    hz = lay["horizon"]
    L = len(kind)
    prefix = (kind == FM) | (kind == STATIC)
    if cfg.variant == "encoder":
        return np.ones((L, L), bool)
    qi = np.arange(L)[:, None]
    kj = np.arange(L)[None, :]
    key_event = (kind == EVENT)[None, :]
    q_is_event = (kind == EVENT)[:, None]
    q_is_query = (kind == QUERY)[:, None]
    see = np.broadcast_to(prefix[None, :], (L, L)).copy()
    # events see events up to and including themselves
    see |= q_is_event & key_event & (hz[None, :] <= hz[:, None])
    # a query after i events sees events 0..i-1
    see |= q_is_query & key_event & (hz[None, :] < hz[:, None])
    see |= qi == kj
    return see


def distances(cfg, lay):
    """float64 [L, L]: the bias distance D_ij between timed tokens, else 0."""
    t = lay["time"]
    p = lay["pos"]
    both = lay["timed"][:, None] & lay["timed"][None, :]
    dist = np.zeros(both.shape)
    if cfg.time_bias:
        dist += np.abs(t[:, None] - t[None, :]).astype(np.float64) / cfg.time_bias_tau
    if cfg.index_bias > 0:
        dist += cfg.index_bias * np.abs(p[:, None] - p[None, :]).astype(np.float64)
    return np.where(both, dist, 0.0)


def collate(cfg, lays, fms=None, placements=None):
    """Pads token tables to one batch (padding is a batching device only:
    a padded key is invisible, a padded query sees itself)."""
    B = len(lays)
    L = max(1, max(len(x["kind"]) for x in lays))
    batch = {}
    for key in ("kind", "row", "type", "chan", "pos", "static_k", "static_v"):
        arr = np.zeros((B, L), np.int64)
        if key == "static_k":
            arr[:] = -1
        for b, lay in enumerate(lays):
            arr[b, :len(lay[key])] = lay[key]
        batch[key] = torch.from_numpy(arr)
    tf = np.zeros((B, L, TIME_FEATURES))
    see = np.zeros((B, L, L), bool)
    dist = np.zeros((B, L, L))
    for b, lay in enumerate(lays):
        m = len(lay["kind"])
        tf[b, :m] = lay["tf"]
        see[b, :m, :m] = visibility(cfg, lay)
        if cfg.has_bias:
            dist[b, :m, :m] = distances(cfg, lay)
    see[:, np.arange(L), np.arange(L)] = True
    batch["tf"] = torch.from_numpy(tf)
    batch["see"] = torch.from_numpy(see)
    batch["dist"] = torch.from_numpy(dist)
    batch["placement"] = torch.as_tensor(
        np.zeros(B, np.int64) if placements is None else np.asarray(placements, np.int64))
    if cfg.d_fm:
        fm = np.zeros((B, cfg.d_fm))
        if fms is not None:
            for b, f in enumerate(fms):
                if f is not None:
                    fm[b] = f
        batch["fm"] = torch.from_numpy(fm)
    return batch


# ---- the network -----------------------------------------------------------

class Block(nn.Module):
    """Pre-LN transformer block; parameter names follow models/transformer.h."""

    def __init__(self, cfg):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.n_heads, self.head_dim = h, d // h
        self.ln1 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.w1 = nn.Linear(d, cfg.d_ff)
        self.w2 = nn.Linear(cfg.d_ff, d)
        self.activation = cfg.activation
        self.drop = nn.Dropout(cfg.dropout)

    def act(self, x):
        if self.activation == "relu":
            return F.relu(x)
        if self.activation == "gelu_tanh":
            return F.gelu(x, approximate="tanh")
        return F.gelu(x)

    def forward(self, x, bias):
        """x [B, L, d]; bias [B, H, L, L] additive (-inf = invisible)."""
        B, L, d = x.shape
        y = self.ln1(x)

        def heads(t):
            return t.view(B, L, self.n_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q(y)), heads(self.k(y)), heads(self.v(y))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        att = torch.softmax(scores, dim=-1) @ v
        att = att.transpose(1, 2).reshape(B, L, d)
        x = x + self.drop(self.o(att))
        x = x + self.drop(self.w2(self.act(self.w1(self.ln2(x)))))
        return x


class FinTRec(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.d_model % cfg.n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError("activation must be one of %s" % (ACTIVATIONS,))
        self.item = nn.Embedding(cfg.n_items, d)
        self.evt = nn.Embedding(cfg.n_event_types, d) if cfg.n_event_types else None
        self.chan = nn.Embedding(cfg.n_channels, d) if cfg.n_channels else None
        self.time_w = nn.Linear(TIME_FEATURES, d, bias=False) if cfg.time_encoding else None
        self.pos = nn.Embedding(cfg.max_events + 1, d) if cfg.learned_positions else None
        if not cfg.readout_last_event:
            self.query = nn.Parameter(torch.zeros(d))
            self.place = nn.Embedding(cfg.n_placements, d)
        if cfg.static_vocab:
            self.sfield = nn.Embedding(len(cfg.static_vocab), d)
            self.sval = nn.ModuleList(nn.Embedding(v, d) for v in cfg.static_vocab)
        if cfg.d_fm:
            self.fm = nn.Linear(cfg.d_fm, d)
        if cfg.has_bias:
            self.log_slopes = nn.Parameter(torch.log(torch.tensor(alibi_slopes(cfg.n_heads))))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.lnf = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.wc = nn.Linear(d, d, bias=False) if cfg.score_transform else None
        self.out_item = None if cfg.tied_item_table else nn.Parameter(torch.zeros(cfg.n_items, d))
        self.bias_prod = nn.Parameter(torch.zeros(cfg.n_items)) if cfg.item_bias else None
        self.bias_place = (nn.Parameter(torch.zeros(cfg.n_placements))
                           if cfg.placement_bias else None)
        self.drop = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    def reset_parameters(self, std=0.02):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if not self.cfg.readout_last_event:
            nn.init.normal_(self.query, std=std)
        if self.out_item is not None:
            nn.init.normal_(self.out_item, std=std)
        if self.wc is not None:
            nn.init.eye_(self.wc.weight)
        if self.cfg.scale_embeddings:
            nn.init.normal_(self.item.weight, std=self.cfg.d_model ** -0.5)

    def slopes(self):
        return torch.exp(self.log_slopes)

    def score_table(self):
        return self.item.weight if self.out_item is None else self.out_item

    # -- embedding --
    def embed(self, batch):
        cfg = self.cfg
        kind = batch["kind"]
        dt = self.item.weight.dtype
        is_ev = (kind == EVENT).unsqueeze(-1).to(dt)
        is_q = (kind == QUERY).unsqueeze(-1).to(dt)
        timed = is_ev + is_q
        item = self.item(batch["row"])
        if cfg.scale_embeddings:
            item = item * math.sqrt(cfg.d_model)
        x = item * is_ev
        if self.evt is not None:
            x = x + self.evt(batch["type"]) * is_ev
        if self.chan is not None:
            x = x + self.chan(batch["chan"]) * is_ev
        if self.time_w is not None:
            x = x + self.time_w(batch["tf"].to(dt)) * timed
        if self.pos is not None:
            x = x + self.pos(batch["pos"].clamp(max=cfg.max_events)) * timed
        if not cfg.readout_last_event:
            q = self.query + self.place(batch["placement"])      # [B, d]
            x = x + q.unsqueeze(1) * is_q
        if cfg.static_vocab:
            sk = batch["static_k"]
            for k in range(len(cfg.static_vocab)):
                here = (sk == k).unsqueeze(-1).to(dt)
                v = batch["static_v"].clamp(0, cfg.static_vocab[k] - 1)
                x = x + (self.sfield.weight[k] + self.sval[k](v)) * here
        if cfg.d_fm:
            here = (kind == FM).unsqueeze(-1).to(dt)
            x = x + self.fm(batch["fm"].to(dt)).unsqueeze(1) * here
        return x

    def attn_bias(self, batch):
        dt = self.item.weight.dtype
        see = batch["see"]
        mask = torch.zeros(see.shape, dtype=dt).masked_fill(~see, float("-inf"))
        mask = mask.unsqueeze(1)                                   # [B, 1, L, L]
        if self.cfg.has_bias:
            dist = batch["dist"].to(dt)
            return mask - self.slopes().to(dt).view(1, -1, 1, 1) * dist.unsqueeze(1)
        return mask.expand(-1, self.cfg.n_heads, -1, -1)

    def hidden(self, batch):
        """Final-norm hidden states [B, L, d] of every token."""
        x = self.drop(self.embed(batch))
        bias = self.attn_bias(batch)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.lnf(x)

    def logits(self, h, placement):
        """h [N, d] user vectors, placement [N] -> logits [N, n_items]."""
        u = self.wc(h) if self.wc is not None else h
        out = u @ self.score_table().t()
        if self.bias_prod is not None:
            out = out + self.bias_prod
        if self.bias_place is not None:
            out = out + self.bias_place[placement].unsqueeze(-1)
        return out

    # -- serving --
    def user_vectors(self, seqs):
        """h_u [B, d] for serving requests (list of Sequence)."""
        lays = [build(self.cfg, s) for s in seqs]
        batch = collate(self.cfg, lays, [s.fm for s in seqs], [s.placement for s in seqs])
        hid = self.hidden(batch)
        out = torch.zeros(len(seqs), self.cfg.d_model, dtype=hid.dtype)
        for b, lay in enumerate(lays):
            if len(lay["kind"]):
                out[b] = hid[b, len(lay["kind"]) - 1]
        return out, batch["placement"]

    def score(self, seqs):
        """Logits over every item row [B, n_items] for serving requests."""
        h, place = self.user_vectors(seqs)
        return self.logits(h, place)


def topk(logits, k, skip_rows):
    """Indices of the k best rows, descending score, lower row first on
    ties, skipping skip_rows (a set) and NaN; the order pgf_topk uses."""
    scores = np.asarray(logits, dtype=np.float64)
    ok = ~np.isnan(scores)
    if skip_rows:
        ok[np.fromiter(skip_rows, np.int64)] = False
    idx = np.nonzero(ok)[0]
    order = np.lexsort((idx, -scores[idx]))
    return idx[order[:k]]


def excluded_rows(cfg, seq, exclude_seen=True):
    """Rows a recommendation never returns: pad, unknown, and with
    exclude_seen every item of the request (all of its events, also those
    older than max_events)."""
    rows = {cfg.item_pad, cfg.item_unknown}
    if exclude_seen:
        rows.update(int(r) for r in seq.rows)
    return rows
