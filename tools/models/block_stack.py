"""PyTorch reference of the block_stack architecture and an
exporter to .pgf.

block_stack = token embeddings (+ learned positions) -> N transformer blocks
-> final norm; the output is the last token's hidden state.  The block is
written from its equations with plain torch ops, independently of the C
kernels, and follows the tensor naming of models/transformer.h:

    bs.emb.tok [vocab, d]   bs.emb.pos [max_positions, d]
    bs.l<l>.ln1.gamma/.beta, .attn.{q,k,v,o}.weight/.bias,
    bs.l<l>.ln2.gamma/.beta, .ffn.w1/.b1/.w3/.b3/.w2/.b2,  bs.lnf.gamma/.beta

Used by the foundation tests (SQL parity of pgformer_encode) and the attach
benchmark (models of a given size).
"""
import math

import torch
import torch.nn.functional as F

from tools import pgf

ACTIVATIONS = {"gelu_erf": pgf.pb.GELU_ERF, "gelu_tanh": pgf.pb.GELU_TANH,
               "relu": pgf.pb.RELU, "silu": pgf.pb.SILU, "swiglu": pgf.pb.SWIGLU}


class Config:
    def __init__(self, d=32, layers=2, heads=4, kv_heads=0, head_dim=0, d_ff=64,
                 vocab=100, norm="layer", placement="pre", activation="gelu_erf",
                 eps=1e-5, qkv_bias=True, out_proj=True, out_bias=True,
                 ffn_bias=True, rope_theta=0.0, max_positions=64, causal=True,
                 final_norm=True, layer_source=(), skip_layers=()):
        self.d, self.layers, self.heads = d, layers, heads
        self.kv_heads = kv_heads or heads
        self.head_dim = head_dim or d // heads
        self.d_ff, self.vocab, self.norm, self.placement = d_ff, vocab, norm, placement
        self.activation, self.eps = activation, eps
        self.qkv_bias, self.out_proj, self.out_bias = qkv_bias, out_proj, out_bias
        self.ffn_bias, self.rope_theta = ffn_bias, rope_theta
        self.max_positions, self.causal, self.final_norm = max_positions, causal, final_norm
        self.layer_source, self.skip_layers = list(layer_source), list(skip_layers)


def random_weights(cfg, seed=0, scale=0.2):
    """Seeded random weights: {name: float32 tensor}."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, s=scale):
        return (torch.randn(*shape, generator=g) * s).float()

    d, qd, kvd = cfg.d, cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    w = {"bs.emb.tok": rnd(cfg.vocab, d, s=1.0)}
    if cfg.max_positions and not cfg.rope_theta:
        w["bs.emb.pos"] = rnd(cfg.max_positions, d, s=0.5)
    sources = cfg.layer_source or list(range(cfg.layers))
    for layer in sorted(set(sources)):
        p = "bs.l%d." % layer
        for ln in ("ln1", "ln2"):
            w[p + ln + ".gamma"] = 1.0 + rnd(d, s=0.1)
            if cfg.norm == "layer":
                w[p + ln + ".beta"] = rnd(d, s=0.1)
        for part, rows in (("q", qd), ("k", kvd), ("v", kvd)):
            w[p + "attn.%s.weight" % part] = rnd(rows, d, s=1 / math.sqrt(d))
            if cfg.qkv_bias:
                w[p + "attn.%s.bias" % part] = rnd(rows, s=0.1)
        if cfg.out_proj:
            w[p + "attn.o.weight"] = rnd(d, qd, s=1 / math.sqrt(qd))
            if cfg.out_bias:
                w[p + "attn.o.bias"] = rnd(d, s=0.1)
        ffn = [("w1", "b1", cfg.d_ff, d), ("w2", "b2", d, cfg.d_ff)]
        if cfg.activation == "swiglu":
            ffn.append(("w3", "b3", cfg.d_ff, d))
        for wn, bn, rows, cols in ffn:
            w[p + "ffn." + wn] = rnd(rows, cols, s=1 / math.sqrt(cols))
            if cfg.ffn_bias:
                w[p + "ffn." + bn] = rnd(rows, s=0.1)
    if cfg.final_norm:
        w["bs.lnf.gamma"] = 1.0 + rnd(d, s=0.1)
        if cfg.norm == "layer":
            w["bs.lnf.beta"] = rnd(d, s=0.1)
    return w


def _norm(cfg, x, gamma, beta):
    if cfg.norm == "rms":
        return gamma * x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.eps)
    return F.layer_norm(x, (cfg.d,), gamma, beta, cfg.eps)


def _rope(x, positions, theta):
    """Rotate-half rotary embedding over x [n, heads, hd]."""
    hd = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    angles = positions.double()[:, None] * inv_freq[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], -1).float()[:, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1).float()[:, None, :]
    rotated = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rotated * sin


def _act(cfg, h, w, p):
    def lin(name, bias):
        out = h @ w[p + "ffn." + name].T
        return out + w[p + "ffn." + bias] if cfg.ffn_bias else out

    a = lin("w1", "b1")
    if cfg.activation == "swiglu":
        a = F.silu(a) * lin("w3", "b3")
    elif cfg.activation == "gelu_erf":
        a = F.gelu(a)
    elif cfg.activation == "gelu_tanh":
        a = F.gelu(a, approximate="tanh")
    elif cfg.activation == "relu":
        a = F.relu(a)
    elif cfg.activation == "silu":
        a = F.silu(a)
    out = a @ w[p + "ffn.w2"].T
    return out + w[p + "ffn.b2"] if cfg.ffn_bias else out


def _attention(cfg, h, w, p, positions, allowed):
    n = h.shape[0]

    def proj(part):
        out = h @ w[p + "attn.%s.weight" % part].T
        return out + w[p + "attn.%s.bias" % part] if cfg.qkv_bias else out

    q = proj("q").view(n, cfg.heads, cfg.head_dim)
    k = proj("k").view(n, cfg.kv_heads, cfg.head_dim)
    v = proj("v").view(n, cfg.kv_heads, cfg.head_dim)
    if cfg.rope_theta:
        q, k = _rope(q, positions, cfg.rope_theta), _rope(k, positions, cfg.rope_theta)
    group = cfg.heads // cfg.kv_heads
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(cfg.head_dim)
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    out = torch.einsum("hqk,khd->qhd", torch.softmax(scores, -1), v).reshape(n, -1)
    if cfg.out_proj:
        out = out @ w[p + "attn.o.weight"].T
        if cfg.out_bias:
            out = out + w[p + "attn.o.bias"]
    return out


def encode(cfg, w, tokens):
    """The last token's final hidden state [d] for a list of token ids."""
    with torch.no_grad():
        tokens = torch.tensor(tokens, dtype=torch.long)
        n = tokens.shape[0]
        x = w["bs.emb.tok"][tokens].clone()
        if "bs.emb.pos" in w:
            x = x + w["bs.emb.pos"][:n]
        positions = torch.arange(n)
        allowed = torch.ones(n, n, dtype=torch.bool)
        if cfg.causal:
            allowed = torch.tril(allowed)
        sources = cfg.layer_source or list(range(cfg.layers))
        for layer in range(cfg.layers):
            if layer in cfg.skip_layers:
                continue
            p = "bs.l%d." % sources[layer]

            def norm(t, ln):
                return _norm(cfg, t, w[p + ln + ".gamma"], w.get(p + ln + ".beta"))

            if cfg.placement == "pre":
                x = x + _attention(cfg, norm(x, "ln1"), w, p, positions, allowed)
                x = x + _act(cfg, norm(x, "ln2"), w, p)
            else:
                x = norm(x + _attention(cfg, x, w, p, positions, allowed), "ln1")
                x = norm(x + _act(cfg, x, w, p), "ln2")
        if cfg.final_norm:
            x = _norm(cfg, x, w["bs.lnf.gamma"], w.get("bs.lnf.beta"))
        return x[-1]


def export(cfg, w, path, name="block_stack", dtype=pgf.F32):
    """Writes the model as a .pgf file; returns its size in bytes."""
    writer = pgf.Writer("block_stack", name)
    bs = writer.header.block_stack
    bs.vocab_size, bs.causal = cfg.vocab, cfg.causal
    t = bs.blocks
    t.d_model, t.n_layers, t.n_heads, t.n_kv_heads = cfg.d, cfg.layers, cfg.heads, cfg.kv_heads
    t.head_dim, t.d_ff = cfg.head_dim, cfg.d_ff
    t.norm = pgf.pb.RMS_NORM if cfg.norm == "rms" else pgf.pb.LAYER_NORM
    t.norm_placement = pgf.pb.POST_NORM if cfg.placement == "post" else pgf.pb.PRE_NORM
    t.activation = ACTIVATIONS[cfg.activation]
    t.norm_eps, t.qkv_bias, t.out_proj = cfg.eps, cfg.qkv_bias, cfg.out_proj
    t.out_bias, t.ffn_bias, t.rope_theta = cfg.out_bias, cfg.ffn_bias, cfg.rope_theta
    t.max_positions, t.final_norm = cfg.max_positions, cfg.final_norm
    t.layer_source.extend(cfg.layer_source)
    t.skip_layers.extend(cfg.skip_layers)
    for name_, tensor in w.items():
        is_matrix = tensor.dim() == 2 and name_ != "bs.emb.pos"
        writer.add(name_, tensor, dtype if is_matrix else pgf.F32)
    return writer.write(path)
