"""The PyTorch reference of UniFork's image side (docs/unifork.md): the
residual quantiser (RQ) over a shared codebook, the depth head that
predicts an image position's codes one depth after another, and the
convolutional pixel decoder that turns quantised features into an RGB
image.

  RQ:       r_0 = z;  c_d = argmin_k |r_d - C_k|^2;  r_{d+1} = r_d - C[c_d]
            z_q = sum_d C[c_d]                         (depth D, one codebook)
  Depth head (RQ transformer), for the codes of one image position from
  the LLM's hidden state h:
            x_0 = in_mlp_2(h) + pos[0];  x_j = in_mlp_1(C[c_0] + .. + C[c_{j-1}]) + pos[j]
            blocks: x += out_proj(MHA(in_proj(LN1(x))));  x += mlp2(gelu(mlp0(LN2(x))))
            (causal over depths); logits_j = classifier(LN_cls(x_j))
  Decoder:  post_quant 1x1 -> conv_in 3x3 -> mid (Res, Attn, Res) ->
            per level, lowest resolution first: (nrb + 1) x Res (+ Attn at
            the lowest resolution) then nearest x2 + conv 3x3 (all but the
            last level) -> GroupNorm -> SiLU -> conv_out 3x3
  Res(x):   h = conv1(silu(GN1(x))); h = conv2(silu(GN2(h)));
            out = (c_in != c_out ? nin_shortcut(x) : x) + h
  Attn(x):  x + proj_out(V softmax(Q^T K / sqrt(C))), Q, K, V 1x1 of GN(x)

Module and parameter names are those of taming-transformers' Decoder
(decoder.conv_in, decoder.mid.block_1, decoder.up.<level>.block.<j>,
decoder.up.<level>.attn.<j>, decoder.up.<level>.upsample.conv,
decoder.norm_out, decoder.conv_out), so a checkpoint's state dict loads as
it is; `decoder_tensors` writes them the way the C decoder
(models/pixel_decoder.c) reads them: 3x3 kernels as [out, 3 * 3 * in] in
(ky, kx, in) order, 1x1 kernels as [out, in].
"""
import math
from dataclasses import dataclass, field
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tools import pgf
from tools.models import llama


@dataclass
class PixelDecoderConfig:
    ch: int = 32
    ch_mult: Tuple[int, ...] = (1, 1, 2, 4)
    num_res_blocks: int = 1          # a level runs num_res_blocks + 1 blocks
    z_channels: int = 32             # conv_in's input (post_quant_conv's output)
    embed_dim: int = 64              # post_quant_conv's input (the codebook width)
    out_channels: int = 3
    groups: int = 32
    eps: float = 1e-6

    @property
    def levels(self):
        return len(self.ch_mult)

    @property
    def upscale(self):
        return 2 ** (self.levels - 1)


def group_norm(c, cfg):
    return nn.GroupNorm(cfg.groups, c, eps=cfg.eps, affine=True)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, cfg):
        super().__init__()
        self.norm1 = group_norm(cin, cfg)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout, cfg)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c, cfg):
        super().__init__()
        self.norm = group_norm(c, cfg)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).reshape(b, c, h * w).permute(0, 2, 1)       # [b, hw, c]
        k = self.k(n).reshape(b, c, h * w)                        # [b, c, hw]
        v = self.v(n).reshape(b, c, h * w)
        attn = torch.softmax(torch.bmm(q, k) / math.sqrt(c), dim=2)   # [b, hw_q, hw_k]
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    def __init__(self, cin, cout, n_blocks, attention, upsample, cfg):
        super().__init__()
        self.block = nn.ModuleList([ResBlock(cin if j == 0 else cout, cout, cfg)
                                    for j in range(n_blocks)])
        self.attn = nn.ModuleList([AttnBlock(cout, cfg) for _ in range(n_blocks)]
                                  if attention else [])
        if upsample:
            self.upsample = Upsample(cout)


class Mid(nn.Module):
    def __init__(self, c, cfg):
        super().__init__()
        self.block_1 = ResBlock(c, c, cfg)
        self.attn_1 = AttnBlock(c, cfg)
        self.block_2 = ResBlock(c, c, cfg)


class Decoder(nn.Module):
    """taming-transformers' Decoder with attention at the lowest resolution."""

    def __init__(self, cfg: PixelDecoderConfig):
        super().__init__()
        c = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = Mid(c, cfg)
        up = [None] * cfg.levels
        for level in reversed(range(cfg.levels)):
            cout = cfg.ch * cfg.ch_mult[level]
            up[level] = Level(c, cout, cfg.num_res_blocks + 1, level == cfg.levels - 1,
                              level != 0, cfg)
            c = cout
        self.up = nn.ModuleList(up)
        self.norm_out = group_norm(c, cfg)
        self.conv_out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(range(len(self.up))):
            lv = self.up[level]
            for j, block in enumerate(lv.block):
                h = block(h)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class PixelDecoder(nn.Module):
    """post_quant_conv (1x1, codebook width -> z_channels) and the Decoder:
    [b, embed_dim, h, w] quantised features -> [b, 3, h * upscale, w * upscale]
    in about [-1, 1] (before clamping)."""

    def __init__(self, cfg: PixelDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)

    def forward(self, zq):
        return self.decoder(self.post_quant_conv(zq))


def to_rgb(x):
    """Decoder output [3, H, W] in [-1, 1] -> uint8 [H, W, 3]."""
    return torch.clamp((x + 1) * 127.5, 0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def rq_quantize(z, codebook, depth):
    """Residual quantisation of z [n, d] over codebook [k, d] (Euclidean,
    ties to the lowest index, as torch.argmin): codes [n, depth] and
    z_q [n, d] = the sum of the chosen entries."""
    r = z.clone()
    codes = []
    zq = torch.zeros_like(z)
    for _ in range(depth):
        dist = (r * r).sum(1, keepdim=True) - 2 * r @ codebook.T + (codebook * codebook).sum(1)
        c = torch.argmin(dist, dim=1)
        codes.append(c)
        zq = zq + codebook[c]
        r = r - codebook[c]
    return torch.stack(codes, 1), zq


@dataclass
class DepthHeadConfig:
    d: int = 128                     # the LLM's width (in and out)
    width: int = 128                 # attention width E
    heads: int = 4
    d_ff: int = 128                  # MLP hidden width
    blocks: int = 1
    depth: int = 2                   # D codes per position
    codebook_size: int = 256
    code_dim: int = 64
    eps: float = 1e-5                # LayerNorm (PyTorch's default)


class DepthBlock(nn.Module):
    def __init__(self, c: DepthHeadConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.d, eps=c.eps)
        self.attn_in_proj = nn.Linear(c.d, c.width)
        self.query = nn.Linear(c.width, c.width)
        self.key = nn.Linear(c.width, c.width)
        self.value = nn.Linear(c.width, c.width)
        self.proj = nn.Linear(c.width, c.width)
        self.attn_out_proj = nn.Linear(c.width, c.d)
        self.ln2 = nn.LayerNorm(c.d, eps=c.eps)
        self.mlp0 = nn.Linear(c.d, c.d_ff)
        self.mlp2 = nn.Linear(c.d_ff, c.d)
        self.heads = c.heads

    def forward(self, x):
        b, t, _ = x.shape
        u = self.attn_in_proj(self.ln1(x))
        hd = u.shape[-1] // self.heads

        def split(y):
            return y.reshape(b, t, self.heads, hd).transpose(1, 2)
        q, k, v = split(self.query(u)), split(self.key(u)), split(self.value(u))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        o = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.attn_out_proj(self.proj(o))
        return x + self.mlp2(F.gelu(self.mlp0(self.ln2(x))))


class DepthHead(nn.Module):
    """The RQ transformer of one image position, computed without a cache
    (every depth recomputes the positions before it, as the released code
    does); teacher forcing gives every depth's logits in one pass."""

    def __init__(self, c: DepthHeadConfig):
        super().__init__()
        self.c = c
        self.in_mlp_1 = nn.Linear(c.code_dim, c.d)
        self.in_mlp_2 = nn.Linear(c.d, c.d)
        self.pos_emb_d = nn.Parameter(torch.zeros(c.depth, c.d))
        self.blocks = nn.ModuleList([DepthBlock(c) for _ in range(c.blocks)])
        self.ln_cls = nn.LayerNorm(c.d, eps=c.eps)
        self.classifier = nn.Linear(c.d, c.codebook_size)

    def forward(self, h, codes, codebook):
        """h [b, d], codes [b, D] (the codes of depths 0..D-2 are read),
        codebook [K, code_dim] -> logits [b, D, K]."""
        parts = [self.in_mlp_2(h)[:, None]]
        partial = torch.zeros(h.shape[0], codebook.shape[1], dtype=h.dtype)
        for j in range(self.c.depth - 1):
            partial = partial + codebook[codes[:, j]]
            parts.append(self.in_mlp_1(partial)[:, None])
        x = torch.cat(parts, 1) + self.pos_emb_d
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.ln_cls(x))


def depth_head_tensors(model: DepthHead, prefix):
    """{name: float32 array} of a depth head: its parameter names under prefix."""
    return {prefix + name: np.ascontiguousarray(value.detach().to(torch.float32).numpy())
            for name, value in model.state_dict().items()}


def init_random(model, seed, std=0.2):
    """Seeded random weights for tests: matrices ~ N(0, 1 / fan_in), LayerNorm
    scales near 1, everything else N(0, std^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "pos_emb" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif name.endswith(".weight") and "ln" in name.split(".")[-2]:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def decoder_tensors(model: PixelDecoder, prefix):
    """{name: float32 array} of a pixel decoder as the C side stores it:
    taming names under prefix, 3x3 kernels as [out, 9 * in] in (ky, kx, in)
    order, 1x1 kernels as [out, in], GroupNorm weight and bias as they are."""
    out = {}
    for name, value in model.state_dict().items():
        a = value.detach().to(torch.float32).numpy()
        if a.ndim == 4:
            a = a.transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        out[prefix + name] = np.ascontiguousarray(a)
    return out


def init_decoder(model: PixelDecoder, seed):
    """Seeded random weights with unit-scale activations throughout (for
    tests): kernels ~ N(0, 1 / fan_in), biases and norm shifts small."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            elif name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                    or name.endswith("norm.weight") or name.endswith("norm_out.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


# ---- the image encoder (the understanding path's vision tower) ----------------

@dataclass
class ImageEncoderConfig:
    side: int = 32                   # images are resized to side x side
    patch: int = 4                   # -> (side / patch)^2 tokens
    d: int = 64
    layers: int = 2
    heads: int = 4
    d_ff: int = 256
    eps: float = 1e-5
    code_dim: int = 64               # output width (the codebook's)

    @property
    def tokens(self):
        return (self.side // self.patch) ** 2


class EncoderBlock(nn.Module):
    """Pre-LN, biases everywhere, GELU (erf), bidirectional: the block of
    models/transformer.h under LayerNorm / PRE_NORM / GELU_ERF."""

    def __init__(self, c: ImageEncoderConfig):
        super().__init__()
        self.heads = c.heads
        self.ln1 = nn.LayerNorm(c.d, eps=c.eps)
        self.q, self.k, self.v, self.o = (nn.Linear(c.d, c.d) for _ in range(4))
        self.ln2 = nn.LayerNorm(c.d, eps=c.eps)
        self.w1 = nn.Linear(c.d, c.d_ff)
        self.w2 = nn.Linear(c.d_ff, c.d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        u = self.ln1(x)

        def split(y):
            return y.reshape(b, t, self.heads, hd).transpose(1, 2)
        a = torch.softmax(split(self.q(u)) @ split(self.k(u)).transpose(-1, -2) / math.sqrt(hd), -1)
        x = x + self.o((a @ split(self.v(u))).transpose(1, 2).reshape(b, t, d))
        return x + self.w2(F.gelu(self.w1(self.ln2(x))))


class ImageEncoder(nn.Module):
    """Channel-major patches [b, tokens, 3 P^2] of an image in [-1, 1] ->
    features [b, tokens, code_dim] that the residual quantiser turns into
    codes: patch projection + learned positions, pre-LN blocks, final
    LayerNorm, output projection."""

    def __init__(self, c: ImageEncoderConfig):
        super().__init__()
        self.c = c
        self.patch = nn.Linear(3 * c.patch * c.patch, c.d)
        self.pos = nn.Parameter(torch.randn(c.tokens, c.d) * 0.02)
        self.blocks = nn.ModuleList([EncoderBlock(c) for _ in range(c.layers)])
        self.lnf = nn.LayerNorm(c.d, eps=c.eps)
        self.out = nn.Linear(c.d, c.code_dim)

    def forward(self, patches):
        x = self.patch(patches) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.out(self.lnf(x))


def encoder_tensors(enc: ImageEncoder, prefix="uf.enc"):
    """{name: float32 array} in models/transformer.h naming under prefix."""
    def np32(t):
        return np.ascontiguousarray(t.detach().to(torch.float32).numpy())
    out = {prefix + ".patch.weight": np32(enc.patch.weight), prefix + ".patch.bias": np32(enc.patch.bias),
           prefix + ".pos": np32(enc.pos), prefix + ".lnf.gamma": np32(enc.lnf.weight),
           prefix + ".lnf.beta": np32(enc.lnf.bias), prefix + ".out.weight": np32(enc.out.weight),
           prefix + ".out.bias": np32(enc.out.bias)}
    for i, blk in enumerate(enc.blocks):
        p = "%s.l%d." % (prefix, i)
        for ln in ("ln1", "ln2"):
            out[p + ln + ".gamma"] = np32(getattr(blk, ln).weight)
            out[p + ln + ".beta"] = np32(getattr(blk, ln).bias)
        for part in ("q", "k", "v", "o"):
            out[p + "attn.%s.weight" % part] = np32(getattr(blk, part).weight)
            out[p + "attn.%s.bias" % part] = np32(getattr(blk, part).bias)
        out[p + "ffn.w1"], out[p + "ffn.b1"] = np32(blk.w1.weight), np32(blk.w1.bias)
        out[p + "ffn.w2"], out[p + "ffn.b2"] = np32(blk.w2.weight), np32(blk.w2.bias)
    return out


def encoder_from_pgf(m):
    """The image encoder of a read "unifork" file (f32 weights), the
    inverse of encoder_tensors."""
    c = m.header.unifork
    e = c.encoder
    enc = ImageEncoder(ImageEncoderConfig(side=c.image_side, patch=c.encoder_patch, d=e.d_model,
                                          layers=e.n_layers, heads=e.n_heads, d_ff=e.d_ff,
                                          eps=e.norm_eps, code_dim=c.code_dim))
    params = dict(enc.named_parameters())
    names = {"patch.weight": "uf.enc.patch.weight", "patch.bias": "uf.enc.patch.bias",
             "pos": "uf.enc.pos", "lnf.weight": "uf.enc.lnf.gamma", "lnf.bias": "uf.enc.lnf.beta",
             "out.weight": "uf.enc.out.weight", "out.bias": "uf.enc.out.bias"}
    per_layer = {"ln1.weight": "ln1.gamma", "ln1.bias": "ln1.beta", "ln2.weight": "ln2.gamma",
                 "ln2.bias": "ln2.beta", "w1.weight": "ffn.w1", "w1.bias": "ffn.b1",
                 "w2.weight": "ffn.w2", "w2.bias": "ffn.b2"}
    with torch.no_grad():
        for key, p in params.items():
            if key.startswith("blocks."):
                _, layer, part = key.split(".", 2)
                part = per_layer.get(part, "attn." + part)
                name = "uf.enc.l%s.%s" % (layer, part)
            else:
                name = names[key]
            p.copy_(torch.from_numpy(np.array(m[name], np.float32)).reshape(p.shape))
    return enc.eval()


def fill_encoder_config(msg, c: ImageEncoderConfig):
    """The UniForkConfig fields of the image encoder."""
    b = msg.encoder
    b.d_model, b.n_layers, b.n_heads, b.n_kv_heads = c.d, c.layers, c.heads, c.heads
    b.head_dim, b.d_ff = c.d // c.heads, c.d_ff
    b.norm, b.norm_placement, b.activation = pgf.pb.LAYER_NORM, pgf.pb.PRE_NORM, pgf.pb.GELU_ERF
    b.norm_eps = c.eps
    b.qkv_bias = b.out_proj = b.out_bias = b.ffn_bias = b.final_norm = True
    b.max_positions = c.tokens
    msg.image_side, msg.encoder_patch = c.side, c.patch


# ---- the whole model: Y-shaped LLM, projector, depth head, pixel decoder ----

@dataclass
class UniForkConfig:
    llm: llama.DecoderConfig = field(default_factory=lambda: llama.DecoderConfig(
        d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=384, vocab_size=263,
        norm_eps=1e-6, rope_theta=1e4, qkv_bias=True, tied=True))
    shared_layers: int = 0           # 0: n_layers // 2
    image_grid: int = 8
    head: DepthHeadConfig = field(default_factory=DepthHeadConfig)
    decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    cfg_scale: float = 4.0
    gen_template: str = "{prompt}"
    uncond_prompt: str = ""

    @property
    def shared(self):
        return self.shared_layers or self.llm.n_layers // 2


class UniFork(nn.Module):
    """The understanding branch is `llm` (all layers and its final norm);
    the generation path runs llm.layers[:shared], then `gen_layers` and
    `norm_gen`.  The projector maps a code sum (codebook width) to the LLM's
    width; `boi_eoi` holds the begin- and end-of-image embeddings."""

    def __init__(self, c: UniForkConfig):
        super().__init__()
        assert c.head.d == c.llm.d_model and c.decoder.embed_dim == c.head.code_dim
        self.c = c
        self.llm = llama.Decoder(c.llm)
        self.gen_layers = nn.ModuleList([llama.Block(c.llm)
                                         for _ in range(c.llm.n_layers - c.shared)])
        self.norm_gen = llama.RMSNorm(c.llm.d_model, c.llm.norm_eps)
        self.codebook = nn.Parameter(torch.zeros(c.head.codebook_size, c.head.code_dim))
        self.linear1 = nn.Linear(c.head.code_dim, c.llm.d_model)
        self.linear2 = nn.Linear(c.llm.d_model, c.llm.d_model)
        self.boi_eoi = nn.Parameter(torch.zeros(2, c.llm.d_model))
        self.head = DepthHead(c.head)
        self.vq = PixelDecoder(c.decoder)

    def project(self, e):
        """Code sums [..., code_dim] -> LLM inputs [..., d] (no boi/eoi)."""
        return self.linear2(F.gelu(self.linear1(e)))

    def gen_hidden(self, x, pos0, caches):
        """x [B, T, d] -> norm_gen'd hidden states of the generation path."""
        cos, sin = llama.rope_tables(torch.arange(pos0, pos0 + x.shape[1]),
                                     self.c.llm.hd, self.c.llm.rope_theta)
        layers = list(self.llm.layers[:self.c.shared]) + list(self.gen_layers)
        for i, layer in enumerate(layers):
            x = layer(x, cos, sin, caches[i])
        return self.norm_gen(x)

    @torch.no_grad()
    def generate_codes(self, cond_ids, uncond_ids, cfg_scale=None, greedy=True, margins=None):
        """Greedy image codes [grid * grid, D] for a prompt (cond) and the
        unconditional prompt, each its own sequence from position 0:
        [tokens; boi], then one position per image position.  margins, a
        list, receives each choice's lead over the runner-up."""
        c = self.c
        scale = c.cfg_scale if cfg_scale is None else cfg_scale
        n_layers = c.llm.n_layers
        rows = []
        for ids in (cond_ids, uncond_ids):
            x = torch.cat([self.llm.tok(torch.tensor([ids])), self.boi_eoi[None, :1]], 1)
            caches = [dict() for _ in range(n_layers)]
            rows.append({"caches": caches, "pos": x.shape[1],
                         "h": self.gen_hidden(x, 0, caches)[:, -1]})
        codes = []
        for _ in range(c.image_grid * c.image_grid):
            hidden = torch.cat([r["h"] for r in rows], 0)                # [2, d]
            chosen = torch.zeros(c.head.depth, dtype=torch.long)
            for j in range(c.head.depth):
                lg = self.head(hidden, chosen.repeat(2, 1), self.codebook)[:, j]
                mixed = lg[1] + scale * (lg[0] - lg[1])
                if margins is not None:
                    top = mixed.sort(descending=True).values
                    margins.append(float(top[0] - top[1]))
                chosen[j] = int(torch.argmax(mixed))
            codes.append(chosen)
            e = self.codebook[chosen].sum(0)
            x = self.project(e)[None, None]
            for r in rows:
                r["h"] = self.gen_hidden(x, r["pos"], r["caches"])[:, -1]
                r["pos"] += 1
        return torch.stack(codes)

    @torch.no_grad()
    def decode_codes(self, codes):
        """codes [grid * grid, D] -> decoder output [3, H, W] (before clamping)."""
        g = self.c.image_grid
        zq = self.codebook[codes].sum(1)                                  # [g g, e]
        return self.vq(zq.T.reshape(1, -1, g, g))[0]


def fill_unifork_config(msg, c: UniForkConfig):
    llama.fill_blocks(msg.blocks, c.llm)
    msg.vocab_size = c.llm.vocab_size
    msg.tied_embeddings = c.llm.tied
    msg.shared_layers = c.shared
    msg.image_grid = c.image_grid
    msg.rq_depth = c.head.depth
    msg.codebook_size = c.head.codebook_size
    msg.code_dim = c.head.code_dim
    msg.depth_width, msg.depth_heads = c.head.width, c.head.heads
    msg.depth_ff, msg.depth_blocks = c.head.d_ff, c.head.blocks
    msg.decoder_ch = c.decoder.ch
    del msg.decoder_ch_mult[:]
    msg.decoder_ch_mult.extend(c.decoder.ch_mult)
    msg.decoder_res_blocks = c.decoder.num_res_blocks
    msg.decoder_z_channels = c.decoder.z_channels
    msg.decoder_groups = c.decoder.groups
    msg.cfg_scale = c.cfg_scale
    msg.gen_template = c.gen_template
    msg.uncond_prompt = c.uncond_prompt


def unifork_tensors(model: UniFork):
    """{pgf name: float32 array} of a whole UniFork (docs/unifork.md)."""
    def np32(t):
        return np.ascontiguousarray(t.detach().to(torch.float32).numpy())
    out = {name: np32(t) for name, t, _ in llama.tensor_map(model.llm, "uf")}
    for j, layer in enumerate(model.gen_layers):
        for name, t, _ in llama.layer_tensors(layer, "uf.gen.l%d." % j, model.c.llm.qkv_bias):
            out[name] = np32(t)
    out["uf.gen.lnf.gamma"] = np32(model.norm_gen.weight)
    out["uf.rq.codebook"] = np32(model.codebook)
    for part in ("linear1", "linear2"):
        lin = getattr(model, part)
        out["uf.proj.%s.weight" % part] = np32(lin.weight)
        out["uf.proj.%s.bias" % part] = np32(lin.bias)
    out["uf.proj.boi_eoi"] = np32(model.boi_eoi)
    out.update(depth_head_tensors(model.head, "uf.depth."))
    out.update(decoder_tensors(model.vq, "uf.vq."))
    return out


def save_pgf(model: UniFork, path, name, tokenizer=None, metadata=None, encoder=None):
    """Writes model (and its image encoder, when given) as a "unifork" .pgf (f32)."""
    w = pgf.Writer("unifork", name)
    fill_unifork_config(w.header.unifork, model.c)
    tensors = unifork_tensors(model)
    if encoder is not None:
        fill_encoder_config(w.header.unifork, encoder.c)
        tensors.update(encoder_tensors(encoder))
    for tname, value in tensors.items():
        w.add(tname, value)
    if tokenizer is not None:
        tokenizer.write(w)
    for k, v in (metadata or {}).items():
        w.header.metadata[k] = str(v)
    return w.write(path)


def config_from_msg(msg):
    """A UniForkConfig from a file's UniForkConfig message."""
    b = msg.blocks
    llm = llama.DecoderConfig(
        d_model=b.d_model, n_layers=b.n_layers, n_heads=b.n_heads,
        n_kv_heads=b.n_kv_heads or b.n_heads, head_dim=b.head_dim, d_ff=b.d_ff,
        vocab_size=msg.vocab_size, norm_eps=b.norm_eps, rope_theta=b.rope_theta,
        qkv_bias=b.qkv_bias, tied=msg.tied_embeddings, max_positions=b.max_positions)
    head = DepthHeadConfig(d=b.d_model, width=msg.depth_width, heads=msg.depth_heads,
                           d_ff=msg.depth_ff, blocks=msg.depth_blocks, depth=msg.rq_depth,
                           codebook_size=msg.codebook_size, code_dim=msg.code_dim)
    dec = PixelDecoderConfig(ch=msg.decoder_ch, ch_mult=tuple(msg.decoder_ch_mult),
                             num_res_blocks=msg.decoder_res_blocks,
                             z_channels=msg.decoder_z_channels, embed_dim=msg.code_dim,
                             groups=msg.decoder_groups or 32)
    return UniForkConfig(llm=llm, shared_layers=msg.shared_layers, image_grid=msg.image_grid,
                         head=head, decoder=dec, cfg_scale=msg.cfg_scale or 4.0,
                         gen_template=msg.gen_template or "{prompt}",
                         uncond_prompt=msg.uncond_prompt)


def load_pgf(path):
    """Reads a "unifork" .pgf into (UniFork with f32 weights, Model)."""
    m = pgf.read(path)
    model = UniFork(config_from_msg(m.header.unifork))
    with torch.no_grad():
        for tname, t, _ in llama.tensor_map(model.llm, "uf"):
            t.copy_(torch.from_numpy(np.array(m[tname], np.float32)).reshape(t.shape))
        for j, layer in enumerate(model.gen_layers):
            for tname, t, _ in llama.layer_tensors(layer, "uf.gen.l%d." % j, model.c.llm.qkv_bias):
                t.copy_(torch.from_numpy(np.array(m[tname], np.float32)).reshape(t.shape))
        model.norm_gen.weight.copy_(torch.from_numpy(np.array(m["uf.gen.lnf.gamma"], np.float32)))
        model.codebook.copy_(torch.from_numpy(np.array(m["uf.rq.codebook"], np.float32)))
        for part in ("linear1", "linear2"):
            lin = getattr(model, part)
            lin.weight.copy_(torch.from_numpy(np.array(m["uf.proj.%s.weight" % part], np.float32)))
            lin.bias.copy_(torch.from_numpy(np.array(m["uf.proj.%s.bias" % part], np.float32)))
        model.boi_eoi.copy_(torch.from_numpy(np.array(m["uf.proj.boi_eoi"], np.float32)))
        for module, prefix in ((model.head, "uf.depth."), (model.vq, "uf.vq.")):
            state = {}
            for name, value in module.state_dict().items():
                a = np.array(m[prefix + name], np.float32)
                if value.ndim == 4:     # back from (ky, kx, in) order
                    a = a.reshape(value.shape[0], value.shape[2], value.shape[3], value.shape[1])
                    a = a.transpose(0, 3, 1, 2)
                state[name] = torch.from_numpy(np.ascontiguousarray(a)).reshape(value.shape)
            module.load_state_dict(state)
    model.eval()
    return model, m
