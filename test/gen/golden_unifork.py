"""PyTorch references for test/unit/test_pixel_decoder.c and
test/unit/test_rq.c: seeded random pixel decoders, a residual quantiser's
codebook and a depth head (tools/models/unifork.py) with their inputs and
outputs, one .pgf file (architecture "golden").

    python3 test/gen/golden_unifork.py OUT.pgf

Per case <c>: pixdec.<c>.dims I32 [ch, levels, num_res_blocks, z_channels,
embed_dim, out_channels, groups, h, w, ch_mult...], the decoder's tensors
under "pixdec.<c>." as the C side reads them (tools.models.unifork
.decoder_tensors), pixdec.<c>.zq [h * w, embed_dim] (position-major) and
pixdec.<c>.out [(h s) * (w s), 3]: the decoder's output before clamping,
computed in float64 from the float32 weights.

rq.codebook [K, e], rq.z [n, e], rq.dims I32 [depth], rq.codes I32
[n, depth], rq.zq [n, e]: the quantiser (every choice wins by a margin).
depth.dims I32 [d, width, heads, d_ff, blocks, depth], depth.* the head's
tensors, depth.hidden [2, d] (cond, uncond), depth.forced I32 [depth],
depth.logits [depth, 2, K] (teacher forcing with the forced codes),
depth.cfg F32 [guidance scale], depth.greedy I32 [depth]: the codes greedy
decoding of the guided logits picks.

Beside OUT.pgf, unifork_tiny.pgf: a whole random UniFork (byte tokenizer,
4 x 4 image positions of 2 codes, 8 x 8 pixels), with in OUT.pgf
model.cond / model.uncond I32 (prompt token ids), model.cfg F32 [scale],
model.codes I32 [16, 2] (greedy generation; every choice wins by a
margin), model.pixels [64, 3] (the decoder's output for those codes) and
model.und_logits [vocab] (the understanding branch's logits after the
prompt), model.enc_patches [16, 48] and model.enc_codes I32 [16, 2] (the
image encoder's features of those patches, quantised);
unifork_broken_{codebook,depth,levels}.pgf: the same file with a
codebook size, a code depth or a decoder level its tensors do not have;
unifork_micro.pgf: the smallest whole UniFork, a seed of the fuzzer.
"""
import os
import sys

import numpy as np
import torch

from tools import pgf
from tools.models import llama
from tools.models import tokenizer as tr
from tools.models import unifork as uf

CASES = (
    # the tiny config of docs/unifork.md: 8 x 8 latent -> 64 x 64 pixels
    ("tiny", uf.PixelDecoderConfig(ch=32, ch_mult=(1, 1, 2, 4), num_res_blocks=1,
                                   z_channels=32, embed_dim=64), 8, 8),
    # narrow: 8 groups, no extra residual block, a non-square latent
    ("narrow", uf.PixelDecoderConfig(ch=16, ch_mult=(2, 1), num_res_blocks=0,
                                     z_channels=8, embed_dim=12, groups=8), 3, 5),
)


def assert_clear_choices(z, codebook, codes, what):
    """Every quantiser choice of codes [n, depth] for z wins by a margin, so
    that float32 distances on the C side choose the same."""
    r, cb = z.double(), codebook.double()
    for j in range(codes.shape[1]):
        dist = ((r[:, None, :] - cb[None]) ** 2).sum(-1).sort(1).values
        assert (dist[:, 1] - dist[:, 0]).min() > 1e-3, "ambiguous %s case" % what
        r = r - cb[codes[:, j]]


def rq_cases(w):
    g = torch.Generator().manual_seed(99)
    k, e, n, depth = 40, 16, 30, 3
    codebook = torch.randn(k, e, generator=g)
    z = torch.randn(n, e, generator=g) * 1.5
    codes, zq = uf.rq_quantize(z.double(), codebook.double(), depth)
    assert_clear_choices(z, codebook, codes, "quantiser")
    w.add("rq.codebook", codebook.numpy())
    w.add("rq.z", z.numpy())
    w.add("rq.dims", np.array([depth], np.int32), dtype=pgf.I32)
    w.add("rq.codes", codes.numpy().astype(np.int32), dtype=pgf.I32)
    w.add("rq.zq", zq.numpy().astype(np.float32))

    c = uf.DepthHeadConfig(d=32, width=48, heads=4, d_ff=64, blocks=2, depth=depth,
                           codebook_size=k, code_dim=e)
    head = uf.DepthHead(c)
    uf.init_random(head, 5)
    for name, value in uf.depth_head_tensors(head, "depth.").items():
        w.add(name, value)
    w.add("depth.dims", np.array([c.d, c.width, c.heads, c.d_ff, c.blocks, c.depth], np.int32),
          dtype=pgf.I32)
    hidden = torch.randn(2, c.d, generator=g)
    forced = torch.tensor([7, 31, 2])
    head = head.double()
    cb = codebook.double()
    logits = head(hidden.double(), forced.repeat(2, 1), cb)          # [2, D, K]
    w.add("depth.hidden", hidden.numpy())
    w.add("depth.forced", forced.numpy().astype(np.int32), dtype=pgf.I32)
    w.add("depth.logits", logits.permute(1, 0, 2).numpy().astype(np.float32))
    scale = 4.0
    greedy = torch.zeros(depth, dtype=torch.long)
    for j in range(depth):          # recomputed from scratch at every depth
        lg = head(hidden.double(), greedy.repeat(2, 1), cb)[:, j]
        mixed = lg[1] + scale * (lg[0] - lg[1])
        top = mixed.sort(descending=True).values
        assert top[0] - top[1] > 1e-3, "ambiguous greedy case"
        greedy[j] = int(torch.argmax(mixed))
    w.add("depth.cfg", np.array([scale], np.float32))
    w.add("depth.greedy", greedy.numpy().astype(np.int32), dtype=pgf.I32)


def micro_case(path, tok):
    """The smallest whole UniFork (about 60 KB), a seed for the fuzzer."""
    c = uf.UniForkConfig(
        llm=llama.DecoderConfig(d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=32,
                                vocab_size=258, norm_eps=1e-6, rope_theta=1e4, qkv_bias=True,
                                tied=True, max_positions=32),
        image_grid=2,
        head=uf.DepthHeadConfig(d=16, width=16, heads=2, d_ff=16, blocks=1, depth=2,
                                codebook_size=8, code_dim=8),
        decoder=uf.PixelDecoderConfig(ch=8, ch_mult=(1, 1), num_res_blocks=0, z_channels=8,
                                      embed_dim=8, groups=4))
    model = uf.UniFork(c)
    model.llm.init_weights(50, std=0.1)
    enc = uf.ImageEncoder(uf.ImageEncoderConfig(side=8, patch=4, d=8, layers=1, heads=2, d_ff=16,
                                                code_dim=8))
    uf.save_pgf(model, path, "unifork-micro-random", tokenizer=tok, encoder=enc)


def model_case(w, path):
    tok = tr.TokenizerSpec("bytes", specials=[("<s>", 256), ("</s>", 257)])
    c = uf.UniForkConfig(
        llm=llama.DecoderConfig(d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=128,
                                vocab_size=258, norm_eps=1e-6, rope_theta=1e4, qkv_bias=True,
                                tied=True, max_positions=64),
        image_grid=4,
        head=uf.DepthHeadConfig(d=64, width=64, heads=4, d_ff=128, blocks=1, depth=2,
                                codebook_size=64, code_dim=32),
        decoder=uf.PixelDecoderConfig(ch=32, ch_mult=(1, 2), num_res_blocks=0, z_channels=16,
                                      embed_dim=32),
        cfg_scale=3.0, gen_template="<s>{prompt}", uncond_prompt="")
    model = uf.UniFork(c)
    model.llm.init_weights(21, std=0.1)
    g = torch.Generator().manual_seed(30)
    with torch.no_grad():
        for name, p in model.gen_layers.named_parameters():
            noise = torch.randn(p.shape, generator=g) * 0.1
            p.copy_(1 + noise if ".ln" in "." + name else noise)
    for module in (model.head, model.linear1, model.linear2):
        uf.init_random(module, 41)
    uf.init_decoder(model.vq, 42)
    with torch.no_grad():
        model.codebook.copy_(torch.randn(model.codebook.shape, generator=g))
        model.boi_eoi.copy_(torch.randn(model.boi_eoi.shape, generator=g) * 0.5)
        model.norm_gen.weight.fill_(1.0)
    enc = uf.ImageEncoder(uf.ImageEncoderConfig(side=16, patch=4, d=32, layers=2, heads=4, d_ff=64,
                                                code_dim=32))
    uf.init_random(enc, 44)
    uf.save_pgf(model, path, "unifork-tiny-random", tokenizer=tok, encoder=enc)
    patches = torch.rand(enc.c.tokens, 3 * 16, generator=torch.Generator().manual_seed(45)) * 2 - 1
    z = enc.double()(patches.double()[None])[0]
    enc_codes, _ = uf.rq_quantize(z, model.codebook.double(), c.head.depth)
    assert_clear_choices(z, model.codebook, enc_codes, "image-codes")
    w.add("model.enc_patches", patches.numpy())
    w.add("model.enc_codes", enc_codes.numpy().astype(np.int32), dtype=pgf.I32)
    model = model.double()
    cond, uncond = tok.encode("<s>a photo of a bag"), tok.encode("<s>")
    margins = []
    codes = model.generate_codes(cond, uncond, margins=margins)
    assert min(margins) > 1e-3, "ambiguous generation case (%g)" % min(margins)
    pixels = model.decode_codes(codes)
    with torch.no_grad():
        und = model.llm(torch.tensor([cond]))[0, -1]
    w.add("model.cond", np.array(cond, np.int32), dtype=pgf.I32)
    w.add("model.uncond", np.array(uncond, np.int32), dtype=pgf.I32)
    w.add("model.cfg", np.array([c.cfg_scale], np.float32))
    w.add("model.codes", codes.numpy().astype(np.int32), dtype=pgf.I32)
    w.add("model.pixels", np.ascontiguousarray(
        pixels.permute(1, 2, 0).reshape(-1, 3).numpy().astype(np.float32)))
    w.add("model.und_logits", und.numpy().astype(np.float32))
    micro_case(os.path.join(os.path.dirname(path), "unifork_micro.pgf"), tok)
    # files whose config does not match their tensors
    for tag, edit in (("codebook", lambda h: setattr(h, "codebook_size", h.codebook_size + 1)),
                      ("depth", lambda h: setattr(h, "rq_depth", h.rq_depth + 1)),
                      ("levels", lambda h: h.decoder_ch_mult.append(2))):
        m = pgf.read(path)
        bw = pgf.Writer("unifork", "broken")
        bw.header.CopyFrom(m.header)
        del bw.header.tensors[:]
        edit(bw.header.unifork)
        for t in m.header.tensors:
            bw.add(t.name, np.array(m.tensors[t.name]), dtype=t.dtype)
        bw.write(os.path.join(os.path.dirname(path), "unifork_broken_%s.pgf" % tag))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_unifork.py OUT.pgf")
    torch.set_grad_enabled(False)
    w = pgf.Writer("golden", "unifork references")
    for seed, (name, cfg, h, wd) in enumerate(CASES):
        model = uf.PixelDecoder(cfg)
        uf.init_decoder(model, seed + 1)
        p = "pixdec.%s." % name
        w.add(p + "dims", np.array([cfg.ch, cfg.levels, cfg.num_res_blocks, cfg.z_channels,
                                    cfg.embed_dim, cfg.out_channels, cfg.groups, h, wd]
                                   + list(cfg.ch_mult), np.int32), dtype=pgf.I32)
        for tname, value in uf.decoder_tensors(model, p).items():
            w.add(tname, value)
        zq = torch.randn(1, cfg.embed_dim, h, wd, generator=torch.Generator().manual_seed(seed + 11))
        w.add(p + "zq", np.ascontiguousarray(zq[0].permute(1, 2, 0).reshape(h * wd, -1).numpy()))
        out = model.double()(zq.double())[0]
        w.add(p + "out", np.ascontiguousarray(
            out.permute(1, 2, 0).reshape(-1, cfg.out_channels).numpy().astype(np.float32)))
    rq_cases(w)
    out = sys.argv[1]
    model_case(w, os.path.join(os.path.dirname(os.path.abspath(out)), "unifork_tiny.pgf"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    size = w.write(out)
    print("%s: %d tensors, %d bytes" % (out, len(w.header.tensors), size))


if __name__ == "__main__":
    main()
