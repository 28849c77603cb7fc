#!/usr/bin/env python3
"""make_test_fixtures.py: the models, reference outputs and broken files the
foundation's SQL tests use.

    test/gen/make_test_fixtures.py OUTDIR

writes into OUTDIR:
  bs_*.pgf         block_stack models of several block configurations
  expected.csv     model,tokens,hidden: PyTorch's last hidden state for token
                   sequences (the numbers pgformer_encode must reproduce)
  broken/*.pgf     a corpus of broken model files
  broken.csv       file,sqlstate,pattern: how each must be rejected
Everything is seeded, so the files are the same on every run.
"""
import copy
import csv
import os
import random
import struct
import sys
import zlib

import torch

from tools import pgf
from tools.models import block_stack as bs

MODELS = {
    # pre-LN, LayerNorm, GELU, learned positions, causal: the GPT-2 shape
    "bs_tiny": bs.Config(d=32, layers=2, heads=4, d_ff=64, vocab=100),
    # the Llama block: RMSNorm, RoPE, grouped-query heads, SwiGLU, qkv bias
    "bs_llama": bs.Config(d=64, layers=2, heads=4, kv_heads=2, d_ff=96, vocab=120,
                          norm="rms", activation="swiglu", qkv_bias=True,
                          out_bias=False, ffn_bias=False, rope_theta=10000.0,
                          max_positions=0, causal=True, eps=1e-6),
    # post-LN, ReLU, no output projection, bidirectional (SASRec/BERT style)
    "bs_post": bs.Config(d=32, layers=3, heads=2, d_ff=64, vocab=50, placement="post",
                         activation="relu", out_proj=False, causal=False,
                         final_norm=False),
    # GELU-tanh, layer sharing (layer 1 reads layer 0) and a dropped layer
    "bs_shared": bs.Config(d=32, layers=3, heads=4, d_ff=64, vocab=100,
                           activation="gelu_tanh", layer_source=(0, 0, 2),
                           skip_layers=(2,)),
    # SiLU, bidirectional, with no biases at all
    "bs_silu": bs.Config(d=32, layers=1, heads=1, d_ff=32, vocab=64, activation="silu",
                         qkv_bias=False, out_bias=False, ffn_bias=False, causal=False),
}
QUANTISED = {"bs_bf16": ("bs_tiny", pgf.BF16), "bs_f16": ("bs_tiny", pgf.F16)}
# a bigger model for the memory and concurrency tests (about 32 MB)
BIG = bs.Config(d=256, layers=10, heads=8, d_ff=1024, vocab=4000, max_positions=512)


def sequences(cfg, rng, count=6):
    longest = cfg.max_positions or 48
    out = [[rng.randrange(cfg.vocab)]]
    for _ in range(count - 1):
        out.append([rng.randrange(cfg.vocab) for _ in range(rng.randint(2, min(longest, 40)))])
    return out


def write_models(outdir, rows):
    rng = random.Random(7)
    for seed, (name, cfg) in enumerate(MODELS.items()):
        w = bs.random_weights(cfg, seed=seed)
        bs.export(cfg, w, os.path.join(outdir, name + ".pgf"), name)
        for tokens in sequences(cfg, rng):
            rows.append((name, tokens, bs.encode(cfg, w, tokens)))
    for name, (base, dtype) in QUANTISED.items():
        cfg = MODELS[base]
        path = os.path.join(outdir, name + ".pgf")
        bs.export(cfg, bs.random_weights(cfg, seed=100), path, name, dtype=dtype)
        # the reference runs on the weights as stored (read back, widened)
        stored = {k: torch.from_numpy(v.astype("float32")) for k, v in pgf.read(path).tensors.items()}
        for tokens in sequences(cfg, rng, 3):
            rows.append((name, tokens, bs.encode(cfg, stored, tokens)))
    # a second version of bs_tiny (hot swap tests)
    cfg = MODELS["bs_tiny"]
    w = bs.random_weights(cfg, seed=99)
    bs.export(cfg, w, os.path.join(outdir, "bs_tiny_v2.pgf"), "bs_tiny")
    rows.append(("bs_tiny_v2", [1, 2, 3], bs.encode(cfg, w, [1, 2, 3])))
    w = bs.random_weights(BIG, seed=5)
    bs.export(BIG, w, os.path.join(outdir, "bs_big.pgf"), "bs_big")
    rows.append(("bs_big", [5, 6, 7, 8], bs.encode(BIG, w, [5, 6, 7, 8])))


# ---- broken files --------------------------------------------------------------

def split(blob):
    hlen = struct.unpack_from("<I", blob, 12)[0]
    header = pgf.pb.ModelHeader()
    header.ParseFromString(blob[16:16 + hlen])
    doff = (16 + hlen + 63) // 64 * 64
    return header, blob[doff:]


def join(header, data, fix_crc=False):
    if fix_crc:
        header.data_crc32 = zlib.crc32(data) & 0xFFFFFFFF
    head = header.SerializeToString()
    body = b"PGFMODEL" + struct.pack("<II", 1, len(head)) + head
    return body + b"\0" * ((-len(body)) % 64) + data


def tensor(header, name):
    return next(t for t in header.tensors if t.name == name)


def broken_files(good):
    """(file name, bytes, sqlstate, regex the message must match)."""
    h, data = split(good)
    bad_data = bytearray(data)
    bad_data[len(bad_data) // 2] ^= 0xFF
    cases = [
        ("empty", b"", "22P03", "shorter than the 16-byte preamble"),
        ("short_preamble", good[:10], "22P03", "shorter than the 16-byte preamble"),
        ("wrong_magic", b"GGUF" + good[4:], "22P03", "not a pgformer model file"),
        ("future_version", good[:8] + struct.pack("<I", 99) + good[12:], "0A000",
         "format version 99"),
        ("huge_header_length", good[:12] + struct.pack("<I", 0xFFFFFFF0) + good[16:], "22P03",
         "header length .* out of range"),
        ("header_past_end", good[:12] + struct.pack("<I", len(good)) + good[16:], "22P03",
         "truncated"),
        ("garbage_header", good[:16] + bytes(random.Random(3).randrange(256) for _ in range(200))
         + good[216:], "22P03", "does not decode|padding"),
        ("truncated_data", good[:-100], "22P03", "truncated"),
        ("trailing_bytes", good + b"\0" * 64, "22P03", "after the declared"),
        ("bad_checksum", join(copy.deepcopy(h), bytes(bad_data)), "XX001", "checksum"),
    ]

    def variant(label, mutate, state, pattern, fix_crc=False, payload=None):
        hh = copy.deepcopy(h)
        mutate(hh)
        cases.append((label, join(hh, payload if payload is not None else data, fix_crc),
                      state, pattern))

    variant("offset_past_end", lambda hh: setattr(tensor(hh, "bs.lnf.gamma"), "offset",
                                                   hh.data_size + 64),
            "22P03", "bs.lnf.gamma.*runs past the end")
    variant("misaligned_offset", lambda hh: setattr(tensor(hh, "bs.lnf.gamma"), "offset",
                                                     tensor(hh, "bs.lnf.gamma").offset + 4),
            "22P03", "bs.lnf.gamma.*not a multiple of 64")
    variant("nbytes_mismatch", lambda hh: setattr(tensor(hh, "bs.lnf.gamma"), "nbytes", 12),
            "22P03", "bs.lnf.gamma.*declares 12 bytes")

    def reshape(hh):
        t = tensor(hh, "bs.l0.attn.q.weight")
        n = t.shape[0] * t.shape[1]
        del t.shape[:]
        t.shape.append(n)
    variant("shape_vs_config", reshape, "22P03",
            "bs.l0.attn.q.weight.*has shape \\[1024\\] but the config implies \\[32, 32\\]")
    variant("config_vocab", lambda hh: setattr(hh.block_stack, "vocab_size", 101), "22P03",
            "bs.emb.tok.*has shape \\[100, 32\\] but the config implies \\[101, 32\\]")
    variant("config_layers", lambda hh: setattr(hh.block_stack.blocks, "n_layers", 3), "22P03",
            "bs.l2.* is missing")

    def drop_tensor(hh):
        keep = [t for t in hh.tensors if t.name != "bs.l1.ffn.w2"]
        del hh.tensors[:]
        hh.tensors.extend(keep)
    variant("missing_tensor", drop_tensor, "22P03", "bs.l1.ffn.w2.* is missing")

    def duplicate(hh):
        hh.tensors.append(copy.deepcopy(tensor(hh, "bs.lnf.gamma")))
    variant("duplicate_tensor", duplicate, "22P03", "bs.lnf.gamma.* appears twice")

    def overlap(hh):
        a, b = tensor(hh, "bs.l0.attn.q.weight"), tensor(hh, "bs.l0.attn.k.weight")
        b.offset = a.offset + 64
    variant("overlapping_tensors", overlap, "22P03", "overlap")

    def absurd(hh):
        t = tensor(hh, "bs.lnf.gamma")
        del t.shape[:]
        t.shape.extend([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1])
        t.nbytes = 2 ** 63
    variant("absurd_shape", absurd, "22P03", "bs.lnf.gamma.*more (elements|bytes)")

    def many_dims(hh):
        t = tensor(hh, "bs.lnf.gamma")
        t.shape.extend([1] * 9)
    variant("too_many_dims", many_dims, "22P03", "bs.lnf.gamma.* dimensions")

    def zero_dim(hh):
        t = tensor(hh, "bs.lnf.gamma")
        t.shape[0] = 0
    variant("zero_dim", zero_dim, "22P03", "bs.lnf.gamma.*dimension 0 of size 0")
    variant("unknown_dtype", lambda hh: setattr(tensor(hh, "bs.lnf.gamma"), "dtype", 42),
            "22P03", "bs.lnf.gamma.*unknown dtype 42")

    def as_int(hh):
        tensor(hh, "bs.lnf.gamma").dtype = pgf.I32
    variant("wrong_dtype", as_int, "22P03", "bs.lnf.gamma.*dtype i32")
    variant("unknown_architecture", lambda hh: setattr(hh, "architecture", "gpt5"), "22P03",
            "unknown architecture \"gpt5\"")
    variant("no_architecture", lambda hh: setattr(hh, "architecture", ""), "22P03",
            "names no architecture")
    variant("missing_config", lambda hh: hh.ClearField("block_stack"), "22P03",
            "needs its own config")

    def bad_heads(hh):
        hh.block_stack.blocks.n_kv_heads = 3
    variant("bad_heads", bad_heads, "22P03", "cannot share 3 key/value heads")

    def items_missing(hh):
        hh.items.ids_tensor = "items.ids"
        hh.items.count = 3
    variant("items_missing_tensor", items_missing, "22P03", "items.ids.*does not have")

    def quant(hh):
        t = tensor(hh, "bs.lnf.gamma")
        t.dtype = pgf.Q8
        t.nbytes = 32
        t.quant_block = 7
    variant("bad_quant_block", quant, "22P03", "bs.lnf.gamma.*quantisation block 7 does not divide")

    # an unsorted item-id table with a correct checksum: found by the data pass
    def items_unsorted(hh):
        hh.items.ids_tensor = "items.ids"
        hh.items.count = 3
        hh.tensors.add(name="items.ids", shape=[3], dtype=pgf.I64, offset=len(data), nbytes=24)
        hh.data_size = len(data) + 64
    unsorted = data + struct.pack("<3q", 5, 3, 9) + b"\0" * 40
    variant("items_unsorted", items_unsorted, "22P03", "not sorted", fix_crc=True,
            payload=unsorted)

    # header strings that protobuf-c does not check (Python's protobuf writes
    # only valid UTF-8): a marker patched over at the same length
    def patched(label, mutate, mark, bad, pattern):
        hh = copy.deepcopy(h)
        mutate(hh)
        blob = join(hh, data)
        assert blob.count(mark) == 1 and len(mark) == len(bad)
        cases.append((label, blob.replace(mark, bad), "22P03", pattern))

    def rename(hh):
        tensor(hh, "bs.lnf.gamma").name = "bs.lnf.gamm#"
    patched("tensor_name_not_utf8", rename, b"bs.lnf.gamm#", b"bs.lnf.gamm\xff",
            "tensors\\[[0-9]+\\]\\.name is not valid UTF-8 \\(byte 0xff at offset 11")

    def note(hh):
        hh.metadata["note"] = "<nul-here>"
    patched("metadata_nul", note, b"<nul-here>", b"<nul\0here>",
            "metadata\\[.note.\\] value contains a NUL byte \\(at offset 4\\)")

    def padding(blob):
        hlen = struct.unpack_from("<I", blob, 12)[0]
        pos = 16 + hlen
        if pos % 64 == 0:
            return None
        return blob[:pos] + b"\x01" + blob[pos + 1:]
    padded = padding(good)
    if padded is not None:
        cases.append(("nonzero_padding", padded, "22P03", "padding after the header"))
    return cases


def main():
    outdir = sys.argv[1]
    os.makedirs(os.path.join(outdir, "broken"), exist_ok=True)
    rows = []
    write_models(outdir, rows)
    with open(os.path.join(outdir, "expected.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["model", "tokens", "hidden"])
        for name, tokens, hidden in rows:
            out.writerow([name, "{%s}" % ",".join(map(str, tokens)),
                          "{%s}" % ",".join("%.9g" % v for v in hidden.tolist())])
    with open(os.path.join(outdir, "bs_tiny.pgf"), "rb") as f:
        good = f.read()
    with open(os.path.join(outdir, "broken.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "sqlstate", "pattern"])
        for label, blob, state, pattern in broken_files(good):
            with open(os.path.join(outdir, "broken", label + ".pgf"), "wb") as g:
                g.write(blob)
            out.writerow([label + ".pgf", state, pattern])


if __name__ == "__main__":
    main()
