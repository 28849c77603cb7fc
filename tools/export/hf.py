"""Llama-family checkpoints (GGUF or Hugging Face safetensors)
to pgformer "solo" model files.

  python3 -m tools.export.hf --gguf MODEL.gguf --out OUT.pgf [--dtype q8]
  python3 -m tools.export.hf --hf DIR --out OUT.pgf          (config.json,
        model.safetensors or its shards, tokenizer.json)
Options:
  --dtype f32|bf16|q8   storage of matrices and the token table (default q8)
  --vision P,MAX        add SOLO's image tokens (<vision>, <vpatch>,
                        <vrow_sep>, </vision>) after the vocabulary and a zero
                        patch projection for P x P patches, images up to MAX
  --adapter FILE.pgf    a SOLO adapter written by tools.train.solo: its patch
                        projection, the rows of the added tokens and any
                        replaced tensors, its templates and image settings
  --name NAME           model name in the header
Without --adapter the prompt templates are the model's chat format when one
is known (SmolLM2 / ChatML), else plain.

Weights are dequantised to float32 (GGUF Q4_0/Q4_1/Q8_0/... through PyPI
`gguf`), then stored as asked.  GGUF files of llama.cpp's "llama"
architecture store Q and K rows permuted for interleaved rotary pairs; they
are permuted back to the rotate-half order of Hugging Face and pgformer.
`load` returns the tools/models/llama.py Decoder, so references and training use
exactly the converted weights.
"""
import argparse
import json
import os
import struct

import numpy as np
import torch

from tools import pgf
from tools.models import llama
from tools.models import tokenizer as tr

VISION_TOKENS = ["<vision>", "<vpatch>", "<vrow_sep>", "</vision>"]

CHATML_SYSTEM = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                 "Hugging Face<|im_end|>\n")


def unpermute_qk(w, n_heads):
    """Undoes llama.cpp's convert permutation of Q/K rows (per head: pairs
    interleaved -> first half / second half)."""
    out, inp = w.shape
    hd = out // n_heads
    return w.reshape(n_heads, hd // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


# ---- GGUF ---------------------------------------------------------------

def read_gguf(path):
    """(config dict, {hf name: float32 array}, TokenizerSpec) of a GGUF file."""
    import gguf
    from gguf import quants
    r = gguf.GGUFReader(path)
    f = r.fields
    arch = f["general.architecture"].contents()
    if arch not in ("llama", "qwen2", "mistral"):
        raise SystemExit("tools.export.hf: GGUF architecture %r is not a Llama-family decoder" % arch)

    def get(key, default=None):
        k = "%s.%s" % (arch, key)
        return f[k].contents() if k in f else default

    cfg = dict(
        d_model=get("embedding_length"), n_layers=get("block_count"),
        n_heads=get("attention.head_count"),
        n_kv_heads=get("attention.head_count_kv", get("attention.head_count")),
        d_ff=get("feed_forward_length"), norm_eps=get("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=get("rope.freq_base", 10000.0), max_positions=get("context_length", 0),
        head_dim=get("attention.key_length", 0) or 0,
        bos_id=f["tokenizer.ggml.bos_token_id"].contents() if "tokenizer.ggml.bos_token_id" in f else 0,
        eos_id=f["tokenizer.ggml.eos_token_id"].contents() if "tokenizer.ggml.eos_token_id" in f else 0,
        name=f["general.name"].contents() if "general.name" in f else arch, arch=arch)
    weights = {}
    for t in r.tensors:
        data = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        weights[t.name] = data.reshape([int(x) for x in reversed(t.shape)])
    hf = {}
    hd = cfg["head_dim"] or cfg["d_model"] // cfg["n_heads"]
    cfg["head_dim"] = hd
    permuted = arch in ("llama", "mistral")
    hf["model.embed_tokens.weight"] = weights["token_embd.weight"]
    hf["model.norm.weight"] = weights["output_norm.weight"]
    if "output.weight" in weights:
        hf["lm_head.weight"] = weights["output.weight"]
    for i in range(cfg["n_layers"]):
        b = "blk.%d." % i
        p = "model.layers.%d." % i
        q, k = weights[b + "attn_q.weight"], weights[b + "attn_k.weight"]
        if permuted:
            q = unpermute_qk(q, cfg["n_heads"])
            k = unpermute_qk(k, cfg["n_kv_heads"])
        hf[p + "self_attn.q_proj.weight"] = q
        hf[p + "self_attn.k_proj.weight"] = k
        hf[p + "self_attn.v_proj.weight"] = weights[b + "attn_v.weight"]
        hf[p + "self_attn.o_proj.weight"] = weights[b + "attn_output.weight"]
        for part in ("q", "k", "v"):
            if b + "attn_%s.bias" % part in weights:
                hf[p + "self_attn.%s_proj.bias" % part] = weights[b + "attn_%s.bias" % part]
        hf[p + "mlp.gate_proj.weight"] = weights[b + "ffn_gate.weight"]
        hf[p + "mlp.up_proj.weight"] = weights[b + "ffn_up.weight"]
        hf[p + "mlp.down_proj.weight"] = weights[b + "ffn_down.weight"]
        hf[p + "input_layernorm.weight"] = weights[b + "attn_norm.weight"]
        hf[p + "post_attention_layernorm.weight"] = weights[b + "ffn_norm.weight"]
    return cfg, hf, tr.from_gguf(r)


# ---- Hugging Face safetensors ---------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": "bf16", "F64": np.float64}


def read_safetensors(path):
    """{name: float32 array} of one .safetensors file (plain numpy reader)."""
    out = {}
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        base = 8 + n
        blob = np.memmap(path, dtype=np.uint8, mode="r")
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            raw = blob[base + start:base + end]
            dt = _ST_DTYPES.get(info["dtype"])
            if dt is None:
                raise SystemExit("tools.export.hf: %s has dtype %s" % (name, info["dtype"]))
            if dt == "bf16":
                arr = pgf.from_bf16(np.frombuffer(raw, dtype="<u2"))
            else:
                arr = np.frombuffer(raw, dtype=dt).astype(np.float32)
            out[name] = arr.reshape(info["shape"])
    return out


def read_hf(folder):
    cfgj = json.load(open(os.path.join(folder, "config.json")))
    files = sorted(x for x in os.listdir(folder) if x.endswith(".safetensors"))
    if not files:
        raise SystemExit("tools.export.hf: no .safetensors in %s" % folder)
    hf = {}
    for x in files:
        hf.update(read_safetensors(os.path.join(folder, x)))
    n_heads = cfgj["num_attention_heads"]
    cfg = dict(d_model=cfgj["hidden_size"], n_layers=cfgj["num_hidden_layers"],
               n_heads=n_heads, n_kv_heads=cfgj.get("num_key_value_heads", n_heads),
               d_ff=cfgj["intermediate_size"], norm_eps=cfgj.get("rms_norm_eps", 1e-5),
               rope_theta=cfgj.get("rope_theta", 10000.0),
               max_positions=cfgj.get("max_position_embeddings", 0),
               head_dim=cfgj.get("head_dim") or cfgj["hidden_size"] // n_heads,
               bos_id=cfgj.get("bos_token_id") or 0, eos_id=cfgj.get("eos_token_id") or 0,
               name=os.path.basename(os.path.normpath(folder)), arch=cfgj.get("model_type", ""))
    if cfgj.get("tie_word_embeddings", False):
        hf.pop("lm_head.weight", None)
    return cfg, hf, read_tokenizer_json(os.path.join(folder, "tokenizer.json"))


def read_tokenizer_json(path):
    tj = json.load(open(path, encoding="utf-8"))
    model = tj["model"]
    if model.get("type") != "BPE":
        raise SystemExit("tools.export.hf: only byte-level BPE tokenizers are supported")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise SystemExit("tools.export.hf: tokenizer ids are not contiguous")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    pre = json.dumps(tj.get("pre_tokenizer"))
    if "\\\\p{N}{1,3}" in pre or "\\p{N}{1,3}" in pre:
        kind = "llama3"
    elif "(?i:'s" in pre:
        kind = "qwen2"
    elif "Digits" in pre:
        kind = "smollm2"
    else:
        kind = "gpt2"
    specials = [(a["content"], a["id"]) for a in tj.get("added_tokens", []) if a.get("special")]
    return tr.TokenizerSpec("bpe", tokens, merges, specials, kind,
                            ignore_merges=bool(model.get("ignore_merges", False)))


# ---- to a Decoder ---------------------------------------------------------

def build(cfg, hf, tok, vision=None):
    """tools/models/llama.py Decoder (+ tokenizer, config) from HF-named weights.
    vision: (patch_size, max_side) appends the SOLO tokens."""
    vocab = hf["model.embed_tokens.weight"].shape[0]
    tied = "lm_head.weight" not in hf
    qkv_bias = "model.layers.0.self_attn.q_proj.bias" in hf
    dc = llama.DecoderConfig(
        d_model=cfg["d_model"], n_layers=cfg["n_layers"], n_heads=cfg["n_heads"],
        n_kv_heads=cfg["n_kv_heads"], head_dim=cfg["head_dim"], d_ff=cfg["d_ff"],
        vocab_size=vocab, norm_eps=float(cfg["norm_eps"]), rope_theta=float(cfg["rope_theta"]),
        qkv_bias=qkv_bias, tied=tied, max_positions=int(cfg["max_positions"] or 0),
        bos_id=int(cfg["bos_id"]), eos_id=int(cfg["eos_id"]), max_new_tokens=64)
    texts = {s for s, _ in tok.specials}
    stops = [dc.eos_id]
    for s in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"):
        ids = [i for t, i in tok.specials if t == s]
        if ids and ids[0] not in stops:
            stops.append(ids[0])
    dc.stop_ids = stops
    if "<|im_start|>" in texts:
        system = CHATML_SYSTEM if cfg.get("name", "").lower().startswith("smollm") else ""
        turn = system + "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"
        dc.text_template = turn % "{prompt}"
        dc.caption_template = turn % "{image}Describe this image."
        dc.answer_template = turn % "{image}{question}"
    else:
        dc.text_template = "{prompt}"
        dc.caption_template = "{image}"
        dc.answer_template = "{image}{question}"
    if vision:
        p, max_side = vision
        base = vocab
        for k, s in enumerate(VISION_TOKENS):
            tok.specials.append((s, base + k))
        dc.vocab_size = base + len(VISION_TOKENS)
        dc.suppress_from = base
        dc.patch_size, dc.max_image_side = p, max_side
        dc.vision_id, dc.vpatch_id, dc.vrow_sep_id, dc.vision_close_id = \
            base, base + 1, base + 2, base + 3
    model = llama.Decoder(dc)
    with torch.no_grad():
        emb = torch.from_numpy(hf["model.embed_tokens.weight"])
        model.tok.weight[:vocab] = emb
        if dc.vocab_size > vocab:
            # new rows: the mean embedding (SOLO's additions start untrained)
            model.tok.weight[vocab:] = emb.mean(0, keepdim=True)
        if model.patch is not None:
            model.patch.weight.zero_()
        if not tied:
            model.head.weight.zero_()
            model.head.weight[:vocab] = torch.from_numpy(hf["lm_head.weight"])
        model.lnf.weight.copy_(torch.from_numpy(hf["model.norm.weight"]))
        for i, layer in enumerate(model.layers):
            p = "model.layers.%d." % i
            for part in ("q", "k", "v", "o"):
                getattr(layer, part).weight.copy_(
                    torch.from_numpy(hf[p + "self_attn.%s_proj.weight" % part]))
                if qkv_bias and part != "o":
                    getattr(layer, part).bias.copy_(
                        torch.from_numpy(hf[p + "self_attn.%s_proj.bias" % part]))
            layer.w1.weight.copy_(torch.from_numpy(hf[p + "mlp.gate_proj.weight"]))
            layer.w3.weight.copy_(torch.from_numpy(hf[p + "mlp.up_proj.weight"]))
            layer.w2.weight.copy_(torch.from_numpy(hf[p + "mlp.down_proj.weight"]))
            layer.ln1.weight.copy_(torch.from_numpy(hf[p + "input_layernorm.weight"]))
            layer.ln2.weight.copy_(torch.from_numpy(hf[p + "post_attention_layernorm.weight"]))
    model.eval()
    return model, tok


def load(gguf_path=None, hf_dir=None, vision=None):
    """(Decoder, TokenizerSpec, source config) from a GGUF file or HF folder."""
    if gguf_path:
        cfg, hf, tok = read_gguf(gguf_path)
    else:
        cfg, hf, tok = read_hf(hf_dir)
    model, tok = build(cfg, hf, tok, vision)
    return model, tok, cfg


def apply_adapter(model, tok, path):
    """Merges a tools.train.solo adapter: tensors, templates, image settings."""
    a = pgf.read(path)
    src = a.header.solo
    cfg = model.cfg
    with torch.no_grad():
        for name, value in a.tensors.items():
            value = torch.from_numpy(np.array(value, dtype=np.float32))
            if name == "adapter.tok_rows":
                first = int(a.header.metadata["adapter.first_row"])
                model.tok.weight[first:first + value.shape[0]] = value
                continue
            target = dict((n, t) for n, t, _ in llama.tensor_map(model)).get(name)
            if target is None:
                raise SystemExit("tools.export.hf: adapter tensor %s has no place in the model" % name)
            target.copy_(value.reshape(target.shape))
    for field in ("caption_template", "answer_template", "text_template"):
        if getattr(src, field):
            setattr(cfg, field, getattr(src, field))
    if src.max_new_tokens:
        cfg.max_new_tokens = src.max_new_tokens
    if src.vision_close_id:
        cfg.vision_close_id = src.vision_close_id
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf")
    ap.add_argument("--hf")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="q8", choices=["f32", "bf16", "q8"])
    ap.add_argument("--vision")
    ap.add_argument("--adapter")
    ap.add_argument("--name")
    args = ap.parse_args()
    if bool(args.gguf) == bool(args.hf):
        ap.error("give exactly one of --gguf and --hf")
    vision = None
    if args.vision:
        p, m = (int(x) for x in args.vision.split(","))
        vision = (p, m)
    model, tok, cfg = load(args.gguf, args.hf, vision)
    image = None
    meta = {"source": os.path.basename(args.gguf or os.path.normpath(args.hf)),
            "converted_by": "python3 -m tools.export.hf", "dtype": args.dtype}
    if args.adapter:
        a = apply_adapter(model, tok, args.adapter)
        if a.header.HasField("image"):
            im = a.header.image
            image = dict(patch_size=im.patch_size, max_side=im.max_side, mean=list(im.mean),
                         std=list(im.std), grey=im.grey)
        for k, v in a.header.metadata.items():
            meta.setdefault(k, v)
    elif vision:
        image = dict(patch_size=vision[0], max_side=vision[1])
    n = llama.save_pgf(model, args.out, args.name or cfg["name"], args.dtype, tok, image, meta)
    print("tools.export.hf: wrote %s (%.1f MB, %s, vocab %d, %d layers)"
          % (args.out, n / 1e6, args.dtype, model.cfg.vocab_size, model.cfg.n_layers))


if __name__ == "__main__":
    main()
