"""golden_kernels.py: PyTorch reference outputs for the C kernel tests.

Usage: python3 test/gen/golden_kernels.py OUT.pgf

Writes inputs and expected outputs of every kernel in kernels/kernels.h
as tensors of one .pgf file (architecture "golden", no config), read by
test/unit/test_kernels_*.c.  Everything is seeded, so the file is the
same on every run.  References are computed in float64 by PyTorch from
the float32 inputs (for quantised weights: from the dequantised weights
exactly as the file stores them), independently of the C code: the C
side is compared with a stated tolerance.

Naming: <kernel>.<case>.<what>.  Integer parameters of a case are an I32
tensor <kernel>.<case>.dims, float ones an F32 tensor <kernel>.<case>.f.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from tools import pgf

torch.set_grad_enabled(False)
RNG = np.random.RandomState(20240611)


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def f32(t):
    return np.ascontiguousarray(np.asarray(t, dtype=np.float64).astype(np.float32))


class Golden:
    def __init__(self):
        self.w = pgf.Writer("golden", "kernel references")

    def f(self, name, array):
        self.w.add(name, np.asarray(array, dtype=np.float32))

    def i(self, name, values):
        self.w.add(name, np.asarray(values, dtype=np.int32), dtype=pgf.I32)


def gemm_cases(g):
    # (name, trans_a, trans_b, m, n, k, pad): pad widens every row stride
    sizes = [("small", 5, 7, 9), ("blas", 37, 45, 50), ("row", 1, 200, 300),
             ("col", 120, 1, 300)]
    for sname, m, n, k in sizes:
        for ta in (0, 1):
            for tb in (0, 1):
                name = "gemm.%s_%s%s" % (sname, "t" if ta else "n", "t" if tb else "n")
                a_rows, a_cols = (k, m) if ta else (m, k)
                b_rows, b_cols = (n, k) if tb else (k, n)
                lda, ldb, ldc = a_cols + 3, b_cols + 2, n + 1
                a = randn(a_rows, lda)
                b = randn(b_rows, ldb)
                c = randn(m, ldc)
                alpha, beta = 0.75, -0.5
                A = t64(a[:, :a_cols])
                B = t64(b[:, :b_cols])
                opa = A.T if ta else A
                opb = B.T if tb else B
                out = t64(c).clone()
                out[:, :n] = alpha * (opa @ opb) + beta * out[:, :n]
                g.i(name + ".dims", [ta, tb, m, n, k, lda, ldb, ldc])
                g.f(name + ".f", [alpha, beta])
                g.f(name + ".a", a)
                g.f(name + ".b", b)
                g.f(name + ".c", c)
                g.f(name + ".out", f32(out))


def linear_cases(g):
    rows, cols = 96, 800
    w = randn(rows, cols, scale=0.05)
    bias = randn(rows)
    g.f("linear.bias", bias)
    deq = {}
    g.w.add("linear.f32.w", w)
    deq["f32"] = w.astype(np.float64)
    g.w.add("linear.f16.w", w, dtype=pgf.F16)
    deq["f16"] = w.astype(np.float16).astype(np.float64)
    g.w.add("linear.bf16.w", w, dtype=pgf.BF16)
    deq["bf16"] = pgf.from_bf16(pgf.to_bf16(w)).astype(np.float64)
    g.w.add_q8("linear.q8.w", w, block=32)
    q, scales = pgf.quantize_q8(w, 32)
    deq["q8"] = (q.reshape(-1, 32).astype(np.float64)
                 * scales.astype(np.float64)[:, None]).reshape(rows, cols)
    for n in (1, 3, 64):
        x = randn(n, cols)
        g.f("linear.n%d.x" % n, x)
        for dt, wd in deq.items():
            y = t64(x) @ torch.from_numpy(wd).T + t64(bias)
            g.f("linear.%s.n%d.out" % (dt, n), f32(y))
    for dt, wd in deq.items():
        g.f("linear.%s.deq" % dt, f32(wd))


def norm_cases(g):
    n, d = 13, 80
    x = randn(n, d, scale=2.0) + 0.5
    gamma = randn(d) + 1.0
    beta = randn(d)
    w = randn(d) + 1.0
    g.f("norm.x", x)
    g.f("norm.gamma", gamma)
    g.f("norm.beta", beta)
    g.f("norm.w", w)
    g.f("norm.f", [1e-5, 1e-6])
    ln = F.layer_norm(t64(x), (d,), t64(gamma), t64(beta), eps=1e-5)
    g.f("norm.layernorm", f32(ln))
    ln0 = F.layer_norm(t64(x), (d,), t64(gamma), None, eps=1e-5)
    g.f("norm.layernorm_nobeta", f32(ln0))
    X = t64(x)
    rms = t64(w) * X * torch.rsqrt(X.pow(2).mean(-1, keepdim=True) + 1e-6)
    g.f("norm.rmsnorm", f32(rms))


def softmax_cases(g):
    x = randn(6, 37, scale=3.0)
    x[1, :] = -np.inf                   # nothing visible: zeros
    x[2, ::3] = -np.inf                 # partly masked
    x[3, :] += 300.0                    # large values: max subtraction
    x[4, 5] = 80.0                      # one dominant entry
    x[5, :] = -1e30
    ref = torch.softmax(t64(x), dim=-1)
    ref = torch.nan_to_num(ref, nan=0.0)    # all -inf row: the kernel's zeros
    g.f("softmax.x", x)
    g.f("softmax.out", f32(ref))


def activation_cases(g):
    x = np.concatenate([np.linspace(-12, 12, 481, dtype=np.float32),
                        randn(519, scale=3.0)]).astype(np.float32)
    up = randn(1000)
    X = t64(x)
    g.f("act.x", x)
    g.f("act.up", up)
    g.f("act.gelu_erf", f32(F.gelu(X)))
    g.f("act.gelu_tanh", f32(F.gelu(X, approximate="tanh")))
    g.f("act.relu", f32(F.relu(X)))
    g.f("act.silu", f32(F.silu(X)))
    g.f("act.swiglu", f32(F.silu(X) * t64(up)))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def hf_rope(x, positions, head_dim, theta):
    """Hugging Face LlamaRotaryEmbedding + apply_rotary_pos_emb, in float32.

    x: [n, heads, head_dim] float32 tensor; positions: [n] int64."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    t = positions.float()
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos()[:, None, :]
    sin = emb.sin()[:, None, :]
    return x * cos + rotate_half(x) * sin


def rope_cases(g):
    n, heads, hd, stride = 7, 3, 16, 3 * 16 + 5
    x = randn(n, stride)
    g.f("rope.x", x)
    g.i("rope.dims", [n, heads, hd, stride, 5])
    g.f("rope.f", [10000.0])
    xs = torch.from_numpy(x[:, : heads * hd].reshape(n, heads, hd).copy())
    out = x.copy()
    out[:, : heads * hd] = hf_rope(xs, torch.arange(5, 5 + n), hd, 10000.0) \
        .reshape(n, heads * hd).numpy()
    g.f("rope.out_pos0", out)
    positions = np.array([0, 1, 17, 2047, 3, 4000, 9], dtype=np.int32)
    g.i("rope.positions", positions)
    out = x.copy()
    out[:, : heads * hd] = hf_rope(xs, torch.from_numpy(positions.astype(np.int64)),
                                   hd, 10000.0).reshape(n, heads * hd).numpy()
    g.f("rope.out_positions", out)


def attention_reference(q, k, v, n_heads, n_kv_heads, hd, scale, kind,
                        prefix_len, q_pos0, key_valid, bias, slopes):
    """float64 multi-head attention with the kernel's mask semantics."""
    n_q, n_kv = q.shape[0], k.shape[0]
    Q = t64(q).reshape(n_q, n_heads, hd)
    K = t64(k).reshape(n_kv, n_kv_heads, hd)
    V = t64(v).reshape(n_kv, n_kv_heads, hd)
    group = n_heads // n_kv_heads
    qpos = torch.arange(n_q)[:, None] + q_pos0
    kpos = torch.arange(n_kv)[None, :]
    if kind == 0:
        visible = torch.ones(n_q, n_kv, dtype=torch.bool)
    elif kind == 1:
        visible = kpos <= qpos
    else:
        visible = (kpos <= qpos) | (kpos < prefix_len)
    if key_valid is not None:
        visible = visible & torch.from_numpy(key_valid.astype(bool))[None, :]
    out = torch.zeros(n_q, n_heads, hd, dtype=torch.float64)
    for h in range(n_heads):
        gi = h // group
        s = Q[:, h, :] @ K[:, gi, :].T * scale
        if bias is not None:
            s = s + (1.0 if slopes is None else float(slopes[h])) * t64(bias)
        s = s.masked_fill(~visible, float("-inf"))
        p = torch.nan_to_num(torch.softmax(s, dim=-1), nan=0.0)
        out[:, h, :] = p @ V[:, gi, :]
    return out.reshape(n_q, n_heads * hd)


def attention_cases(g):
    # name, n_q, n_kv, H, K, hd, kind, prefix, q_pos0, valid, bias, slopes
    cases = [
        ("mha_bidir", 9, 9, 4, 4, 8, 0, 0, 0, False, False, False),
        ("gqa_causal", 33, 33, 6, 2, 16, 1, 0, 0, False, False, False),
        ("prefix", 10, 10, 2, 2, 8, 2, 4, 0, False, False, False),
        ("padding", 12, 12, 4, 2, 8, 0, 0, 0, True, False, False),
        ("bias_slopes", 11, 11, 4, 4, 8, 1, 0, 0, False, True, True),
        ("bias_shared", 7, 7, 2, 1, 8, 0, 0, 0, True, True, False),
        ("offset", 3, 12, 4, 2, 16, 1, 0, 9, False, False, False),
        ("blas_causal", 300, 300, 2, 1, 64, 1, 0, 0, False, False, False),
        ("blas_prefix", 280, 280, 2, 2, 32, 2, 100, 0, True, False, False),
        ("decode", 1, 40, 8, 2, 32, 1, 0, 39, True, True, True),
        ("decode_long", 1, 700, 12, 4, 64, 1, 0, 699, False, False, False),
        ("blind", 5, 6, 2, 1, 8, 1, 0, 0, True, False, False),
    ]
    for (name, n_q, n_kv, H, K, hd, kind, prefix, q_pos0, has_valid, has_bias,
         has_slopes) in cases:
        p = "attn.%s." % name
        q = randn(n_q, H * hd)
        k = randn(n_kv, K * hd)
        v = randn(n_kv, K * hd)
        valid = None
        if has_valid:
            valid = (RNG.uniform(size=n_kv) > 0.3).astype(np.int32)
            valid[-1] = 1
            if name == "blind":
                valid[:] = 1
                valid[:3] = 0       # queries 0..2 (causal) see no key at all
            g.i(p + "valid", valid)
        bias = randn(n_q, n_kv) if has_bias else None
        slopes = (2.0 ** -np.arange(1, H + 1)).astype(np.float32) if has_slopes else None
        if bias is not None:
            g.f(p + "bias", bias)
        if slopes is not None:
            g.f(p + "slopes", slopes)
        scale = 1.0 / math.sqrt(hd)
        out = attention_reference(q, k, v, H, K, hd, scale, kind, prefix, q_pos0,
                                  valid, bias, slopes)
        g.i(p + "dims", [n_q, n_kv, H, K, hd, kind, prefix, q_pos0,
                         int(has_valid), int(has_bias), int(has_slopes)])
        g.f(p + "f", [scale])
        g.f(p + "q", q)
        g.f(p + "k", k)
        g.f(p + "v", v)
        g.f(p + "out", f32(out))


# ---- blocks ------------------------------------------------------------------

def add_block_weights(g, prefix, layer, biases, swiglu=False, q8=False):
    """Writes the tensors of a block as named in the C test (f32 or Q8)."""
    for part, value in layer.items():
        if value is None:
            continue
        name = prefix + part
        if q8 and value.ndim == 2:
            g.w.add_q8(name, value, block=16)
        else:
            g.w.add(name, np.asarray(value, dtype=np.float32))


def dequantised(layer, q8):
    if not q8:
        return layer
    out = {}
    for part, value in layer.items():
        if value is not None and value.ndim == 2:
            q, s = pgf.quantize_q8(value, 16)
            value = (q.reshape(-1, 16).astype(np.float32) * s[:, None]).reshape(value.shape)
        out[part] = value
    return out


def encoder_layer_case(g, name, norm_first, activation, seg_lengths, causal):
    d, heads, d_ff = 32, 4, 64
    layer = torch.nn.TransformerEncoderLayer(d, heads, d_ff, dropout=0.0,
                                             activation=activation, batch_first=True,
                                             norm_first=norm_first, layer_norm_eps=1e-5)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.from_numpy(randn(*p.shape, scale=0.2)))
        layer.norm1.weight.add_(1.0)
        layer.norm2.weight.add_(1.0)
    layer = layer.double().eval()
    ipw = layer.self_attn.in_proj_weight.detach().float().numpy()
    ipb = layer.self_attn.in_proj_bias.detach().float().numpy()
    weights = {
        "ln1.gamma": layer.norm1.weight, "ln1.beta": layer.norm1.bias,
        "wq": ipw[:d], "wk": ipw[d:2 * d], "wv": ipw[2 * d:],
        "bq": ipb[:d], "bk": ipb[d:2 * d], "bv": ipb[2 * d:],
        "wo": layer.self_attn.out_proj.weight, "bo": layer.self_attn.out_proj.bias,
        "ln2.gamma": layer.norm2.weight, "ln2.beta": layer.norm2.bias,
        "w1": layer.linear1.weight, "b1": layer.linear1.bias,
        "w2": layer.linear2.weight, "b2": layer.linear2.bias,
    }
    weights = {k: (v.detach().float().numpy() if hasattr(v, "detach") else v)
               for k, v in weights.items()}
    p = "block.%s." % name
    add_block_weights(g, p, weights, True)
    total = sum(seg_lengths)
    x = randn(total, d)
    outs = []
    off = 0
    for n in seg_lengths:
        xs = t64(x[off:off + n])[None]
        mask = None
        if causal:
            mask = torch.triu(torch.full((n, n), float("-inf"), dtype=torch.float64), 1)
        outs.append(layer(xs, src_mask=mask)[0])
        off += n
    g.i(p + "dims", [d, heads, heads, d // heads, d_ff, int(causal)] + list(seg_lengths))
    g.f(p + "x", x)
    g.f(p + "out", f32(torch.cat(outs)))


class LlamaBlock(torch.nn.Module):
    """A Llama / Qwen2 decoder layer written out from the Hugging Face code:
    RMSNorm, q/k/v with bias, rotate-half RoPE, grouped-query causal
    attention, o_proj without bias, SwiGLU MLP (gate = w1, up = w3)."""

    def __init__(self, w, d, heads, kv_heads, hd, theta, eps):
        super().__init__()
        self.w = {k: t64(v) for k, v in w.items() if v is not None}
        self.d, self.h, self.kv, self.hd = d, heads, kv_heads, hd
        self.theta, self.eps = theta, eps

    def rms(self, x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, positions):
        # float32 angles as Hugging Face computes them, applied in float64
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2).float() / self.hd))
        freqs = torch.einsum("i,j->ij", positions.float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos().double()[:, None, :]
        sin = emb.sin().double()[:, None, :]
        return x * cos + rotate_half(x) * sin

    def forward(self, x, pos0=0):
        w = self.w
        n = x.shape[0]
        positions = torch.arange(pos0, pos0 + n)
        h = self.rms(x, w["ln1.gamma"])
        q = (h @ w["wq"].T + w["bq"]).reshape(n, self.h, self.hd)
        k = (h @ w["wk"].T + w["bk"]).reshape(n, self.kv, self.hd)
        v = (h @ w["wv"].T + w["bv"]).reshape(n, self.kv, self.hd)
        q = self.rope(q, positions)
        k = self.rope(k, positions)
        rep = self.h // self.kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(self.hd)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        scores = scores.masked_fill(causal, float("-inf"))
        attn = torch.einsum("hqk,khd->qhd", torch.softmax(scores, -1), v)
        x = x + attn.reshape(n, self.h * self.hd) @ w["wo"].T
        h = self.rms(x, w["ln2.gamma"])
        return x + (F.silu(h @ w["w1"].T) * (h @ w["w3"].T)) @ w["w2"].T


def llama_case(g, name, q8):
    d, heads, kv, hd, d_ff, theta, eps = 48, 6, 2, 8, 96, 10000.0, 1e-6
    w = {
        "ln1.gamma": randn(d) * 0.2 + 1.0,
        "wq": randn(heads * hd, d, scale=0.15), "bq": randn(heads * hd, scale=0.1),
        "wk": randn(kv * hd, d, scale=0.15), "bk": randn(kv * hd, scale=0.1),
        "wv": randn(kv * hd, d, scale=0.15), "bv": randn(kv * hd, scale=0.1),
        "wo": randn(d, heads * hd, scale=0.15),
        "ln2.gamma": randn(d) * 0.2 + 1.0,
        "w1": randn(d_ff, d, scale=0.15), "w3": randn(d_ff, d, scale=0.15),
        "w2": randn(d, d_ff, scale=0.1),
    }
    p = "block.%s." % name
    add_block_weights(g, p, w, False, swiglu=True, q8=q8)
    block = LlamaBlock(dequantised(w, q8), d, heads, kv, hd, theta, eps)
    seg_lengths = [13, 5, 1]
    x = randn(sum(seg_lengths), d)
    outs = []
    off = 0
    for n in seg_lengths:
        outs.append(block(t64(x[off:off + n])))
        off += n
    g.i(p + "dims", [d, heads, kv, hd, d_ff, 1] + seg_lengths)
    g.f(p + "f", [theta, eps])
    g.f(p + "x", x)
    g.f(p + "out", f32(torch.cat(outs)))


def topk_cases(g):
    n = 1000
    scores = RNG.permutation(n).astype(np.float32) * 0.01 - 3.0   # distinct
    scores[[5, 77, 500]] = np.nan
    scores[123] = np.inf
    scores[321] = -np.inf
    skip = (RNG.uniform(size=n) < 0.1).astype(np.int32)
    skip[123] = 0
    masked = torch.from_numpy(scores.astype(np.float64))
    masked = masked.masked_fill(torch.from_numpy(skip.astype(bool)) | masked.isnan(),
                                float("-inf"))
    for k in (1, 10, 50):
        values, idx = torch.topk(masked, k)
        g.i("topk.k%d.idx" % k, idx.numpy().astype(np.int32))
        g.f("topk.k%d.score" % k, f32(values))
    g.f("topk.scores", scores)
    g.i("topk.skip", skip)


def nchw(x, h, w):
    """A position-major feature map [h * w, c] as a PyTorch [1, c, h, w]."""
    return t64(x).reshape(h, w, -1).permute(2, 0, 1).unsqueeze(0)


def position_major(t):
    """PyTorch [1, c, h, w] as the kernels' [h * w, c]."""
    return f32(t[0].permute(1, 2, 0).reshape(-1, t.shape[1]))


def conv_weight(w):
    """PyTorch's [c_out, c_in, ky, kx] in the kernels' (ky, kx, c_in) order."""
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1))


def feature_map_cases(g):
    # conv2d: (name, h, w, c_in, c_out, kernel, dtype); "band" is wide enough
    # that the 3x3 im2col runs in two bands of rows
    for name, h, w, cin, cout, k, dtype in (("k3", 7, 5, 6, 4, 3, pgf.F32),
                                            ("k3_band", 50, 64, 40, 8, 3, pgf.F32),
                                            ("k3_bf16", 9, 6, 16, 12, 3, pgf.BF16),
                                            ("k1", 6, 7, 24, 10, 1, pgf.F32)):
        x = randn(h * w, cin)
        wt = randn(cout, cin, k, k, scale=1 / math.sqrt(cin * k * k))
        if dtype == pgf.BF16:
            wt = pgf.from_bf16(pgf.to_bf16(wt)).reshape(wt.shape)
        bias = randn(cout, scale=0.1)
        ref = F.conv2d(nchw(x, h, w), t64(wt), t64(bias), padding=(k - 1) // 2)
        p = "conv.%s." % name
        g.i(p + "dims", [h, w, cin, cout, k])
        g.f(p + "x", x)
        g.w.add(p + "w", conv_weight(wt), dtype=dtype)
        g.f(p + "b", bias)
        g.f(p + "out", position_major(ref))
    # GroupNorm over n positions
    for name, n, c, groups in (("g32", 37, 64, 32), ("g4", 12, 20, 4)):
        x = randn(n, c, scale=2.0) + 0.5
        gamma, beta = randn(c) * 0.5 + 1, randn(c, scale=0.2)
        X = t64(x).T.unsqueeze(0)                       # [1, c, n]
        ref = F.group_norm(X, groups, t64(gamma), t64(beta), eps=1e-6)[0].T
        p = "groupnorm.%s." % name
        g.i(p + "dims", [n, c, groups])
        g.f(p + "x", x)
        g.f(p + "gamma", gamma)
        g.f(p + "beta", beta)
        g.f(p + "out", f32(ref))
    # nearest x2 upsampling
    h, w, c = 3, 5, 4
    x = randn(h * w, c)
    g.i("upsample.dims", [h, w, c])
    g.f("upsample.x", x)
    g.f("upsample.out", position_major(F.interpolate(nchw(x, h, w), scale_factor=2.0,
                                                     mode="nearest")))
    # spatial attention (a taming-transformers AttnBlock)
    h, w, c, groups = 6, 5, 32, 8
    x = randn(h * w, c)
    p = "spatial."
    g.i(p + "dims", [h, w, c, groups])
    g.f(p + "x", x)
    X = nchw(x, h, w)
    gamma, beta = randn(c) * 0.5 + 1, randn(c, scale=0.2)
    g.f(p + "gamma", gamma)
    g.f(p + "beta", beta)
    hn = F.group_norm(X, groups, t64(gamma), t64(beta), eps=1e-6)
    proj = {}
    for name in ("q", "k", "v", "proj_out"):
        wt, bias = randn(c, c, 1, 1, scale=1 / math.sqrt(c)), randn(c, scale=0.1)
        g.f(p + name + ".w", conv_weight(wt))
        g.f(p + name + ".b", bias)
        proj[name] = (t64(wt), t64(bias))
    q, k, v = (F.conv2d(hn, *proj[n]).reshape(c, h * w) for n in ("q", "k", "v"))
    attn = torch.softmax(q.T @ k / math.sqrt(c), dim=-1)      # [hw, hw]
    out = (v @ attn.T).reshape(1, c, h, w)
    g.f(p + "out", position_major(X + F.conv2d(out, *proj["proj_out"])))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_kernels.py OUT.pgf")
    out = sys.argv[1]
    torch.manual_seed(7)
    g = Golden()
    gemm_cases(g)
    linear_cases(g)
    norm_cases(g)
    softmax_cases(g)
    activation_cases(g)
    rope_cases(g)
    attention_cases(g)
    encoder_layer_case(g, "preln_gelu", True, "gelu", [11, 4, 7], False)
    encoder_layer_case(g, "postln_relu", False, "relu", [9, 1, 6], True)
    llama_case(g, "llama", False)
    llama_case(g, "llama_q8", True)
    topk_cases(g)
    feature_map_cases(g)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    size = g.w.write(out)
    print("%s: %d tensors, %d bytes" % (out, len(g.w.header.tensors), size))


if __name__ == "__main__":
    main()
