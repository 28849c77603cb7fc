"""The PyTorch reference for pgformer's Llama-family decoder and
SOLO's pixel-patch input (docs/solo.md).

This is the independent reference the C decoder (models/decoder.c,
models/solo.c) is tested against, the model the training scripts train, and
the reader/writer between PyTorch weights and .pgf files.

  Block(x):  h = x + Attn(RMSNorm_1(x));  y = h + W2(silu(W1 u) * W3 u), u = RMSNorm_2(h)
  Attn:      grouped-query heads, optional q/k/v bias, rotary embedding in the
             rotate-half (NeoX / Hugging Face) form, causal mask, KV cache
  Output:    logits = Head(RMSNorm_f(h)); Head is the token table when tied
  SOLO:      x0 = tok_emb[id] + (patch_index >= 0 ? W_patch . patch : 0)

Tensor names in the .pgf file (models/transformer.h naming, prefix "dec"):
  dec.emb.tok [V, d]             token embeddings (also the head when tied)
  dec.emb.patch.weight [d, 3P^2] pixel-patch projection (patch_size > 0)
  dec.l<l>.ln1.gamma, .attn.{q,k,v,o}.weight (+ .attn.{q,k,v}.bias),
  dec.l<l>.ln2.gamma, .ffn.w1 (gate), .ffn.w3 (up), .ffn.w2 (down)
  dec.lnf.gamma [d]              final RMSNorm
  dec.head.weight [V, d]         output projection when not tied
Tokenizer side tables (models/tokenizer.h) are written by tools/models/tokenizer.py.

Image input (docs/solo.md, "Images"): the SOLO size rule, per-channel
normalisation and channel-major patches; `image_block` lays out
<vision> P .. P <vrow_sep> P .. P <close>.
"""
import math
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tools import pgf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DecoderConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 0             # 0: d_model // n_heads
    d_ff: int = 352
    vocab_size: int = 263
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    qkv_bias: bool = False
    tied: bool = False
    max_positions: int = 0        # 0: unbounded
    # Generation and SOLO layout.
    bos_id: int = 0
    eos_id: int = 0
    stop_ids: List[int] = field(default_factory=list)
    suppress_from: int = 0        # ids >= this are never generated (0: none)
    patch_size: int = 0           # 0: text only
    max_image_side: int = 0
    vision_id: int = 0
    vpatch_id: int = 0
    vrow_sep_id: int = 0
    vision_close_id: int = 0
    # Prompt templates: "{image}", "{question}" and "{prompt}" are the
    # markers; other text is tokenized with special tokens recognised.
    caption_template: str = ""
    answer_template: str = ""
    text_template: str = ""
    max_new_tokens: int = 32

    @property
    def hd(self):
        return self.head_dim or self.d_model // self.n_heads

    @property
    def patch_dim(self):
        return 3 * self.patch_size * self.patch_size


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x if x.dtype == torch.float64 else x.float()
        return self.weight * (xf * torch.rsqrt((xf * xf).mean(-1, keepdim=True) + self.eps))


def rope_tables(positions, hd, theta):
    """cos, sin [T, hd] for rotate-half rotary embedding."""
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = positions.double()[:, None] * inv_freq[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):
    """x [..., T, heads, hd]; cos/sin [T, hd] (float64, cast to x's type)."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        d, hd = cfg.d_model, cfg.hd
        self.cfg = cfg
        self.ln1 = RMSNorm(d, cfg.norm_eps)
        self.q = nn.Linear(d, cfg.n_heads * hd, bias=cfg.qkv_bias)
        self.k = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.v = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.o = nn.Linear(cfg.n_heads * hd, d, bias=False)
        self.ln2 = RMSNorm(d, cfg.norm_eps)
        self.w1 = nn.Linear(d, cfg.d_ff, bias=False)   # gate
        self.w3 = nn.Linear(d, cfg.d_ff, bias=False)   # up
        self.w2 = nn.Linear(cfg.d_ff, d, bias=False)   # down

    def forward(self, x, cos, sin, cache=None):
        """x [B, T, d]; cache: None or a dict with 'k', 'v' [B, Tc, K, hd]
        (updated in place).  Queries sit after the cached keys."""
        cfg = self.cfg
        B, T, _ = x.shape
        hd, H, K = cfg.hd, cfg.n_heads, cfg.n_kv_heads
        u = self.ln1(x)
        q = self.q(u).view(B, T, H, hd)
        k = self.k(u).view(B, T, K, hd)
        v = self.v(u).view(B, T, K, hd)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            if cache.get("k") is not None:
                past = cache["k"].shape[1]
                k = torch.cat([cache["k"], k], dim=1)
                v = torch.cat([cache["v"], v], dim=1)
            cache["k"], cache["v"] = k, v
        g = H // K
        kk = k.repeat_interleave(g, dim=2).transpose(1, 2)   # [B, H, Tk, hd]
        vv = v.repeat_interleave(g, dim=2).transpose(1, 2)
        qq = q.transpose(1, 2)                               # [B, H, T, hd]
        scores = qq @ kk.transpose(-1, -2) / math.sqrt(hd)
        Tk = kk.shape[2]
        qpos = torch.arange(T)[:, None] + past
        kpos = torch.arange(Tk)[None, :]
        scores = scores.masked_fill(kpos > qpos, float("-inf"))
        a = torch.softmax(scores if scores.dtype == torch.float64 else scores.float(), dim=-1)
        o = (a.to(vv.dtype) @ vv).transpose(1, 2).reshape(B, T, H * hd)
        h = x + self.o(o)
        u = self.ln2(h)
        return h + self.w2(F.silu(self.w1(u)) * self.w3(u))


class Decoder(nn.Module):
    """Llama-family decoder with SOLO's optional patch projection."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.patch = (nn.Linear(cfg.patch_dim, cfg.d_model, bias=False)
                      if cfg.patch_size else None)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.lnf = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = None if cfg.tied else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def init_weights(self, seed, std=0.02):
        """Seeded random weights (norm gains too, so tests exercise them)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("ln1.weight") or name.endswith("ln2.weight") \
                        or name == "lnf.weight":
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                elif name.endswith(".bias"):
                    p.copy_(0.05 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(std * torch.randn(p.shape, generator=g))
        return self

    def embed(self, ids, patch_index=None, patches=None):
        """ids [B, T] (long); patch_index [B, T] (-1: text), patches [Np, 3P^2]."""
        x = self.tok(ids)
        if patch_index is not None and patches is not None and patches.shape[0] > 0:
            proj = self.patch(patches)                          # [Np, d]
            proj = torch.cat([proj, proj.new_zeros(1, proj.shape[1])], dim=0)
            idx = patch_index.clone()
            idx[idx < 0] = proj.shape[0] - 1
            x = x + proj[idx]
        return x

    def hidden(self, x, pos0=0, caches=None):
        """x [B, T, d] embeddings -> final-normed hidden states [B, T, d]."""
        T = x.shape[1]
        cos, sin = rope_tables(torch.arange(pos0, pos0 + T), self.cfg.hd, self.cfg.rope_theta)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, caches[i] if caches is not None else None)
        return self.lnf(x)

    def logits(self, h):
        if self.head is None:
            return h @ self.tok.weight.t()
        return self.head(h)

    def forward(self, ids, patch_index=None, patches=None):
        return self.logits(self.hidden(self.embed(ids, patch_index, patches)))

    def new_caches(self):
        return [dict() for _ in self.layers]

    @torch.no_grad()
    def greedy(self, x, max_new, stop_ids=(), suppress_from=0, use_cache=True):
        """x [1, T, d] prompt embeddings -> list of generated ids (stop id
        excluded).  Ids >= suppress_from (when > 0) are never chosen."""
        out = []
        caches = self.new_caches() if use_cache else None
        h = self.hidden(x, 0, caches)
        pos = x.shape[1]
        seq = x
        for _ in range(max_new):
            logits = self.logits(h[:, -1]).float()[0]
            if suppress_from:
                logits[suppress_from:] = float("-inf")
            t = int(torch.argmax(logits))
            if t in stop_ids:
                break
            out.append(t)
            e = self.tok(torch.tensor([[t]]))
            if use_cache:
                h = self.hidden(e, pos, caches)
            else:
                seq = torch.cat([seq, e], dim=1)
                h = self.hidden(seq, 0, None)
            pos += 1
        return out


# ---- images -------------------------------------------------------------

def solo_size(width, height, patch, max_side):
    """SOLO's target (width, height): the long side rounded up to a multiple
    of patch (at most max_side), the short side scaled and rounded up."""
    long_side, short_side = max(width, height), min(width, height)
    new_long = min(-(-long_side // patch) * patch, max_side)
    new_short = -(-(new_long * short_side // long_side) // patch) * patch
    new_short = max(new_short, patch)
    return (new_long, new_short) if width >= height else (new_short, new_long)


def normalise(img, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """img [3, H, W] in [0, 1] -> per-channel normalised."""
    m = torch.tensor(mean, dtype=img.dtype)[:, None, None]
    s = torch.tensor(std, dtype=img.dtype)[:, None, None]
    return (img - m) / s


def patchify(img, patch):
    """img [3, H, W] -> ([nH*nW, 3*P*P] channel-major patches, nH, nW)."""
    c, h, w = img.shape
    nh, nw = h // patch, w // patch
    p = img.reshape(c, nh, patch, nw, patch).permute(1, 3, 0, 2, 4)
    return p.reshape(nh * nw, c * patch * patch).contiguous(), nh, nw


def image_block(cfg: DecoderConfig, nh, nw):
    """Token ids and patch indices (-1 for plain tokens) of one image."""
    ids, pidx = [cfg.vision_id], [-1]
    for r in range(nh):
        if r > 0:
            ids.append(cfg.vrow_sep_id)
            pidx.append(-1)
        for c in range(nw):
            ids.append(cfg.vpatch_id)
            pidx.append(r * nw + c)
    ids.append(cfg.vision_close_id)
    pidx.append(-1)
    return ids, pidx


def split_template(template):
    """Splits a prompt template into ("text", s) and ("slot", name) parts."""
    parts = []
    rest = template
    slots = ("{image}", "{question}", "{prompt}")
    while rest:
        hits = [(rest.find(s), s) for s in slots if rest.find(s) >= 0]
        if not hits:
            parts.append(("text", rest))
            break
        at, slot = min(hits)
        if at > 0:
            parts.append(("text", rest[:at]))
        parts.append(("slot", slot[1:-1]))
        rest = rest[at + len(slot):]
    return parts


def build_prompt(cfg, tokenizer, template, image=None, text=None):
    """Token ids and patch indices of a prompt.

    template parts: literal text is tokenized with special tokens recognised;
    {question} / {prompt} is the user's text, tokenized as plain text; {image}
    is the image block of an image with grid image = (nH, nW) (skipped when
    None).  tokenizer: a tools.models.tokenizer.TokenizerSpec (its plain-Python
    encoder)."""
    ids, pidx = [], []
    for kind, value in split_template(template):
        if kind == "text":
            part = tokenizer.encode_ref(value, True)
            ids += part
            pidx += [-1] * len(part)
        elif value == "image":
            if image is not None:
                bi, bp = image_block(cfg, image[0], image[1])
                ids += bi
                pidx += bp
        else:
            part = tokenizer.encode_ref(text or "", False)
            ids += part
            pidx += [-1] * len(part)
    return ids, pidx


# ---- .pgf files -----------------------------------------------------------

def layer_tensors(layer: Block, p, qkv_bias):
    """(pgf name, tensor, kind) of one block's weights under prefix p ("dec.l0.")."""
    out = [(p + "ln1.gamma", layer.ln1.weight, "vec")]
    for part in ("q", "k", "v", "o"):
        lin = getattr(layer, part)
        out.append((p + "attn.%s.weight" % part, lin.weight, "mat"))
        if part != "o" and qkv_bias:
            out.append((p + "attn.%s.bias" % part, lin.bias, "vec"))
    out.append((p + "ln2.gamma", layer.ln2.weight, "vec"))
    out.append((p + "ffn.w1", layer.w1.weight, "mat"))
    out.append((p + "ffn.w3", layer.w3.weight, "mat"))
    out.append((p + "ffn.w2", layer.w2.weight, "mat"))
    return out


def tensor_map(model: Decoder, prefix="dec"):
    """(pgf name, tensor, kind) for every weight; kind: 'vec', 'mat', 'emb'."""
    out = [(prefix + ".emb.tok", model.tok.weight, "emb")]
    if model.patch is not None:
        out.append((prefix + ".emb.patch.weight", model.patch.weight, "mat"))
    for i, layer in enumerate(model.layers):
        out.extend(layer_tensors(layer, "%s.l%d." % (prefix, i), model.cfg.qkv_bias))
    out.append((prefix + ".lnf.gamma", model.lnf.weight, "vec"))
    if model.head is not None:
        out.append((prefix + ".head.weight", model.head.weight, "mat"))
    return out


def fill_blocks(b, cfg: DecoderConfig):
    """Fills a TransformerConfig message with cfg's Llama-family blocks."""
    b.d_model, b.n_layers, b.n_heads = cfg.d_model, cfg.n_layers, cfg.n_heads
    b.n_kv_heads, b.head_dim, b.d_ff = cfg.n_kv_heads, cfg.hd, cfg.d_ff
    b.norm = pgf.pb.RMS_NORM
    b.norm_placement = pgf.pb.PRE_NORM
    b.activation = pgf.pb.SWIGLU
    b.norm_eps = cfg.norm_eps
    b.qkv_bias = cfg.qkv_bias
    b.out_proj = True
    b.rope_theta = cfg.rope_theta
    b.max_positions = cfg.max_positions
    b.final_norm = True


def fill_config(msg, cfg: DecoderConfig):
    """Fills a DecoderLMConfig message from cfg."""
    fill_blocks(msg.blocks, cfg)
    msg.vocab_size = cfg.vocab_size
    msg.tied_embeddings = cfg.tied
    msg.bos_id, msg.eos_id = cfg.bos_id, cfg.eos_id
    del msg.stop_ids[:]
    msg.stop_ids.extend(cfg.stop_ids)
    msg.suppress_from = cfg.suppress_from
    msg.patch_size, msg.max_image_side = cfg.patch_size, cfg.max_image_side
    msg.vision_id, msg.vpatch_id = cfg.vision_id, cfg.vpatch_id
    msg.vrow_sep_id, msg.vision_close_id = cfg.vrow_sep_id, cfg.vision_close_id
    msg.caption_template = cfg.caption_template
    msg.answer_template = cfg.answer_template
    msg.text_template = cfg.text_template
    msg.max_new_tokens = cfg.max_new_tokens


def config_from_msg(msg):
    b = msg.blocks
    return DecoderConfig(
        d_model=b.d_model, n_layers=b.n_layers, n_heads=b.n_heads,
        n_kv_heads=b.n_kv_heads or b.n_heads, head_dim=b.head_dim, d_ff=b.d_ff,
        vocab_size=msg.vocab_size, norm_eps=b.norm_eps, rope_theta=b.rope_theta,
        qkv_bias=b.qkv_bias, tied=msg.tied_embeddings, max_positions=b.max_positions,
        bos_id=msg.bos_id, eos_id=msg.eos_id, stop_ids=list(msg.stop_ids),
        suppress_from=msg.suppress_from, patch_size=msg.patch_size,
        max_image_side=msg.max_image_side, vision_id=msg.vision_id,
        vpatch_id=msg.vpatch_id, vrow_sep_id=msg.vrow_sep_id,
        vision_close_id=msg.vision_close_id, caption_template=msg.caption_template,
        answer_template=msg.answer_template, text_template=msg.text_template,
        max_new_tokens=msg.max_new_tokens)


def save_pgf(model: Decoder, path, name, dtype="f32", tokenizer=None,
             image=None, metadata=None, q8_block=32):
    """Writes model as a "solo" .pgf.  dtype: f32, bf16 or q8 for matrices
    and the token table (norm gains and biases stay f32).  tokenizer: a
    tools.models.tokenizer.TokenizerSpec (written with its side tables).  image:
    dict(patch_size, max_side, mean, std, grey) for ImagePreprocess."""
    w = pgf.Writer("solo", name)
    fill_config(w.header.solo, model.cfg)
    for tname, t, kind in tensor_map(model):
        t = t.detach().float()
        if kind == "vec" or dtype == "f32":
            w.add(tname, t)
        elif dtype == "bf16":
            w.add(tname, t, pgf.BF16)
        elif dtype == "q8":
            w.add_q8(tname, t, block=q8_block)
        else:
            raise ValueError("unknown dtype %r" % dtype)
    if tokenizer is not None:
        tokenizer.write(w)
    if image is not None:
        im = w.header.image
        im.patch_size = image.get("patch_size", model.cfg.patch_size)
        im.max_side = image.get("max_side", model.cfg.max_image_side)
        im.mean.extend(image.get("mean", IMAGENET_MEAN))
        im.std.extend(image.get("std", IMAGENET_STD))
        im.grey = image.get("grey", False)
    for k, v in (metadata or {}).items():
        w.header.metadata[k] = str(v)
    return w.write(path)


def load_pgf(path):
    """Reads a "solo" .pgf into (Decoder with dequantised f32 weights, Model)."""
    m = pgf.read(path)
    cfg = config_from_msg(m.header.solo)
    model = Decoder(cfg)
    with torch.no_grad():
        for tname, t, _ in tensor_map(model):
            t.copy_(torch.from_numpy(np.array(m[tname], dtype=np.float32)).reshape(t.shape))
    model.eval()
    return model, m
