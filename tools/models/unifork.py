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
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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
