"""golden_solo.py: PyTorch and tokenizer references for the decoder, SOLO
and tokenizer unit tests (test/unit/test_decoder.c, test_solo.c,
test_tokenizer.c).

Usage: python3 test/gen/golden_solo.py OUT_DIR
       PYTHONPATH=.whl/site python3 test/gen/golden_solo.py --smollm2 MODEL.gguf OUT_DIR
           (optional, `make unit-smollm2`: needs PyPI gguf and tokenizers,
           which tools/fetch_smollm2.sh puts in .whl/site)

Writes into OUT_DIR (seeded: the same files on every run):
  solo_a.pgf, solo_a_bf16.pgf, solo_a_q8.pgf
        the tiny SOLO config (d 128, 4 layers, 4 heads, 2 KV heads,
        SwiGLU 352, patch 16, max side 64, untied head, no biases), byte
        tokenizer; random weights, stored as f32, bf16 and q8
  solo_b_hf.pgf
        solo_b written as a Hugging Face folder (safetensors, config.json,
        tokenizer.json) and converted by tools/export/hf.py (text only)
  solo_b.pgf
        Qwen2 settings: q/k/v biases, tied output, rope theta 1e6, 4 heads
        sharing 1 KV head, head_dim 40 != d/H; a byte-level BPE tokenizer
        learnt from /usr/share/common-licenses/GPL-3 (300 merges)
  solo_ref.pgf  (architecture "golden") the expected values:
    <m>.<case>.ids / .pidx / .patches / .logits   full-sequence logits
    <m>.<case>.grid                               (nH, nW) of the image
    <m>.gen.<task>.prompt / .tokens / .text       template prompt ids,
                                                  greedy tokens, their text
    <m>.embed                                     image_embedding()
    demo.<i>.patches / .answer / .caption         the committed demo model
                                                  (demo/models/solo_tiny.pgf) on
                                                  Fashion-MNIST test images
    tok.text.<i>                                  test texts as bytes
    tok.<pretok>.<i>.<s|p>                        reference ids, specials on
                                                  (s) or off (p)
Int lists are stored as [length, values...].  References come from tools/models/llama.py (PyTorch, float64 where it matters)
over the weights exactly as each file stores them, and from the plain-Python
BPE of tools/models/tokenizer.py (checked against PyPI `tokenizers` when that
is installed).
"""
import os
import sys

import numpy as np
import torch

from tools import pgf
from tools.data import fashion
from tools.export import hf
from tools.models import llama, solo
from tools.models import tokenizer as tr

torch.set_grad_enabled(False)

LICENSES = "/usr/share/common-licenses"

TRICKY = [
    "Hello world! It's 2024, isn't it? I'VE SEEN 12345 things...\n\n  Indented   spaces"
    "\tand\ttabs \r\n end  ",
    "na\u00efve caf\u00e9 \u2014 \u201cquotes\u201d \u2018single\u2019 \u00bd \u00b2 \u0663 "
    "\u216b \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001F600\U0001F44D\U0001F3FD "
    "e\u0301 \u03a9mega \u00df",
    "trailing spaces   ", "   leading", "\n\n\n", "a\nb", "x  \n y", " \t\n  z",
    "def f(x):\n    return x**2  # comment\n\n\n    pass",
    "3.14159 1,000,000 007 +42 -7e10 x1y2z3",
    "don't WON'T you'll we're they've I'd I'm 's 'S 'hello '' '",
    "<|im_start|>user\nWhat is this?<|im_end|>\n<|im_start|>assistant\n",
    "!!! ??? ... --- ((( ))) [[x]] {y} <z> @#$%^&*",
    "tab\tafter\t\ttabs\u00a0nbsp\u2003emspace\u3000ideographic",
    "",
    "a" * 600, " " * 600 + "x", "ab1" * 200 + "\n" * 50,
]


def license_paragraphs():
    out = []
    for name, count in (("GPL-3", 4), ("Apache-2.0", 2), ("BSD", 2)):
        path = os.path.join(LICENSES, name)
        if not os.path.exists(path):
            continue
        paras = [p for p in open(path, encoding="utf-8").read().split("\n\n") if p.strip()]
        out += paras[1:1 + count]
    return out


def byte_tokenizer():
    """ids 0..255 bytes, 256 <s>, 257 </s>, 258.. the image tokens."""
    specials = [("<s>", 256), ("</s>", 257), ("<vision>", 258), ("<vpatch>", 259),
                ("<vrow_sep>", 260), ("<vframe_sep>", 261), ("</vision>", 262)]
    return tr.TokenizerSpec("bytes", specials=specials, byte_offset=0)


def bpe_tokenizer():
    text = open(os.path.join(LICENSES, "GPL-3"), encoding="utf-8").read()
    vocab, merges = tr.train_bpe(text, 300)
    base = len(vocab)
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<vision>", "<vpatch>",
             "<vrow_sep>", "</vision>"]
    specials = [(s, base + i) for i, s in enumerate(names)]
    return tr.TokenizerSpec("bpe", vocab, merges, specials, "gpt2")


def config_a():
    return llama.DecoderConfig(
        d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=352, vocab_size=263,
        norm_eps=1e-5, rope_theta=10000.0, qkv_bias=False, tied=False,
        bos_id=256, eos_id=257, stop_ids=[257], suppress_from=258,
        patch_size=16, max_image_side=64, vision_id=258, vpatch_id=259, vrow_sep_id=260,
        vision_close_id=262,
        caption_template="<s>{image}Caption:",
        answer_template="<s>{image}Q: {question}\nA:",
        text_template="<s>{prompt}", max_new_tokens=12)


def config_b(tok):
    v = len(tok.vocab) + len([s for s in tok.specials if s[1] >= len(tok.vocab)])
    ids = {s: i for s, i in tok.specials}
    return llama.DecoderConfig(
        d_model=96, n_layers=3, n_heads=4, n_kv_heads=1, head_dim=40, d_ff=160,
        vocab_size=v, norm_eps=1e-6, rope_theta=1e6, qkv_bias=True, tied=True,
        bos_id=ids["<|endoftext|>"], eos_id=ids["<|im_end|>"],
        stop_ids=[ids["<|im_end|>"], ids["<|endoftext|>"]], suppress_from=ids["<vision>"],
        patch_size=8, max_image_side=32, vision_id=ids["<vision>"], vpatch_id=ids["<vpatch>"],
        vrow_sep_id=ids["<vrow_sep>"], vision_close_id=ids["<vision>"],
        caption_template="<|im_start|>user\n{image}Describe the image.<|im_end|>\n"
                         "<|im_start|>assistant\n",
        answer_template="<|im_start|>user\n{image}{question}<|im_end|>\n<|im_start|>assistant\n",
        text_template="<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
        max_new_tokens=10)


def write_hf_folder(model, tok, folder):
    """model as a Hugging Face checkpoint folder (config.json, one f32
    model.safetensors, tokenizer.json), written here with numpy and json,
    for the converter's safetensors path."""
    import json
    import struct
    cfg = model.cfg
    os.makedirs(folder, exist_ok=True)
    names = {"tok": "model.embed_tokens.weight", "lnf": "model.norm.weight"}
    tensors = {names["tok"]: model.tok.weight, names["lnf"]: model.lnf.weight}
    for i, layer in enumerate(model.layers):
        p = "model.layers.%d." % i
        for part in ("q", "k", "v", "o"):
            tensors[p + "self_attn.%s_proj.weight" % part] = getattr(layer, part).weight
            if cfg.qkv_bias and part != "o":
                tensors[p + "self_attn.%s_proj.bias" % part] = getattr(layer, part).bias
        tensors[p + "mlp.gate_proj.weight"] = layer.w1.weight
        tensors[p + "mlp.up_proj.weight"] = layer.w3.weight
        tensors[p + "mlp.down_proj.weight"] = layer.w2.weight
        tensors[p + "input_layernorm.weight"] = layer.ln1.weight
        tensors[p + "post_attention_layernorm.weight"] = layer.ln2.weight
    if not cfg.tied:
        tensors["lm_head.weight"] = model.head.weight
    header, blobs, offset = {}, [], 0
    for name, t in sorted(tensors.items()):
        raw = t.detach().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    json.dump({"model_type": "qwen2", "hidden_size": cfg.d_model,
               "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
               "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.hd,
               "intermediate_size": cfg.d_ff, "rms_norm_eps": cfg.norm_eps,
               "rope_theta": cfg.rope_theta, "max_position_embeddings": 4096,
               "tie_word_embeddings": cfg.tied, "bos_token_id": cfg.bos_id,
               "eos_token_id": cfg.eos_id, "vocab_size": cfg.vocab_size},
              open(os.path.join(folder, "config.json"), "w"))
    vocab = {t: i for i, t in enumerate(tok.vocab)}
    json.dump({"model": {"type": "BPE", "vocab": vocab, "merges": tok.merges},
               "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                 "use_regex": True},
               "added_tokens": [{"id": i, "content": s, "special": True}
                                for s, i in tok.specials]},
              open(os.path.join(folder, "tokenizer.json"), "w"))


class Golden:
    def __init__(self):
        self.w = pgf.Writer("golden", "solo references")

    def f(self, name, array):
        self.w.add(name, np.ascontiguousarray(np.asarray(array, dtype=np.float32)))

    def i(self, name, values):
        """An int list, stored as [length, values...] (never empty)."""
        values = np.asarray(values, dtype=np.int32).reshape(-1)
        self.w.add(name, np.concatenate([[len(values)], values]).astype(np.int32),
                   dtype=pgf.I32)


def logits64(model, ids, pidx, patches):
    """Full-sequence logits in float64 (the reference runs in double)."""
    m64 = model.double()
    out = m64(torch.tensor([ids]), torch.tensor([pidx]),
              None if patches is None else patches.double())[0]
    model.float()
    return out.float().numpy()


def greedy_margin(model, x, steps, suppress_from):
    """Smallest top-1 / top-2 logit gap over a greedy run (robustness)."""
    caches = model.new_caches()
    h = model.hidden(x, 0, caches)
    pos, worst = x.shape[1], float("inf")
    for _ in range(steps):
        lg = model.logits(h[:, -1])[0].clone()
        if suppress_from:
            lg[suppress_from:] = float("-inf")
        top = torch.topk(lg, 2).values
        worst = min(worst, float(top[0] - top[1]))
        t = int(torch.argmax(lg))
        h = model.hidden(model.tok(torch.tensor([[t]])), pos, caches)
        pos += 1
    return worst


def model_cases(g, tag, model, tok, grid, seed):
    cfg = model.cfg
    rng = np.random.RandomState(seed)
    nh, nw = grid
    patches = torch.from_numpy(rng.standard_normal((nh * nw, cfg.patch_dim)).astype(np.float32))
    text_ids = tok.encode_ref("The quick brown fox jumps over the lazy dog. 0123", True)
    # with an image: the caption prompt; without: plain text
    cases = {
        "img": llama.build_prompt(cfg, tok, cfg.answer_template, (nh, nw),
                                  "What is in the picture?"),
        "txt": (text_ids, [-1] * len(text_ids)),
    }
    for name, (ids, pidx) in cases.items():
        p = "%s.%s." % (tag, name)
        g.i(p + "ids", ids)
        g.i(p + "pidx", pidx)
        g.f(p + "logits", logits64(model, ids, pidx, patches if name == "img" else None))
    g.f("%s.patches" % tag, patches.numpy())
    g.i("%s.grid" % tag, [nh, nw])
    # greedy generation through the templates, as pgf_solo_generate does it
    for task, template, text in (("caption", cfg.caption_template, None),
                                 ("answer", cfg.answer_template, "What is this?"),
                                 ("text", cfg.text_template, "Once upon a time")):
        image = None if task == "text" else (nh, nw)
        ids, pidx = llama.build_prompt(cfg, tok, template, image, text)
        x = model.embed(torch.tensor([ids]), torch.tensor([pidx]), patches)
        toks = model.greedy(x, cfg.max_new_tokens, cfg.stop_ids, cfg.suppress_from)
        margin = greedy_margin(model, x, len(toks), cfg.suppress_from)
        if margin < 1e-3:
            print("golden_solo: %s %s greedy margin %.2g is small" % (tag, task, margin),
                  file=sys.stderr)
        g.i("%s.gen.%s.prompt" % (tag, task), ids)
        g.i("%s.gen.%s.tokens" % (tag, task), toks)
        text = tok.decode(toks)
        if task != "text":      # captions and answers come without surrounding blanks
            text = text.strip(" \t\r\n")
        g.i("%s.gen.%s.text" % (tag, task), list(text.encode("utf-8")))
    # image_embedding: mean final hidden state over the patch tokens
    bids, bpidx = llama.image_block(cfg, nh, nw)
    x = model.embed(torch.tensor([bids]), torch.tensor([bpidx]), patches)
    h = model.hidden(x)[0]
    sel = torch.tensor([p >= 0 for p in bpidx])
    g.f("%s.embed" % tag, h[sel].mean(0).numpy())


def demo_cases(g, path, n=12):
    """The committed demo model on Fashion-MNIST test images: patches made
    by PIL (as tools/train/solo.py trains) and PyTorch's greedy answer and caption
    tokens.  Skipped when the model or the data set is missing."""
    if not os.path.exists(path) or not os.path.isdir(fashion.FASHION):
        g.i("demo.count", [0])
        return
    model, m = llama.load_pgf(path)
    greedy_cases(g, "demo", model, tr.TokenizerSpec.from_header(m.header.tokenizer), n)


def greedy_cases(g, tag, model, tok, n, show=False):
    """tag.count, tag.grid and per image tag.I.patches, .answer and .caption:
    PyTorch's greedy answer ("What is this?") and caption tokens for the
    first n Fashion-MNIST test images."""
    cfg = model.cfg
    cfg.answer_space = 0
    tasks = fashion.Tasks(cfg, tok, cfg.stop_ids[0])
    images, _ = fashion.load_fashion("t10k")
    p = solo.patches_of(images[:n])
    ans = solo.greedy_batch(model, tasks.answer_prompts[0], p, 16, cfg.stop_ids, cfg.suppress_from)
    cap = solo.greedy_batch(model, tasks.caption_prompt, p, 56, cfg.stop_ids, cfg.suppress_from)
    g.i("%s.count" % tag, [n])
    g.i("%s.grid" % tag, list(tasks.grid))
    for i in range(n):
        g.f("%s.%d.patches" % (tag, i), p[i].numpy())
        g.i("%s.%d.answer" % (tag, i), ans[i])
        g.i("%s.%d.caption" % (tag, i), cap[i])
        if show:
            print("%s demo: %r / %r" % (tag, tok.decode(ans[i]), tok.decode(cap[i])))


def tokenizer_cases(g, tok):
    texts = TRICKY + license_paragraphs()
    for i, t in enumerate(texts):
        g.i("tok.text.%d" % i, list(t.encode("utf-8")) or [])
    g.i("tok.count", [len(texts)])
    check_hf = True
    for kind in tr.PRETOKENIZERS:
        tok.pretokenizer = kind
        tok._hf = None
        for i, t in enumerate(texts):
            for tag, specials in (("s", True), ("p", False)):
                ids = tok.encode_ref(t, specials)
                if check_hf:
                    try:
                        ref = tok.encode(t, specials)
                    except ImportError:
                        check_hf = False
                    else:
                        if ref != ids:
                            raise SystemExit("golden_solo: plain-Python BPE disagrees with "
                                             "tokenizers on text %d (%s)" % (i, kind))
                g.i("tok.%s.%d.%s" % (kind, i, tag), ids)
    tok.pretokenizer = "gpt2"
    tok._hf = None


SMOLLM2_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence what a database index is.",
    "List three colours of the rainbow.",
    "What is 12 plus 30?",
    "Translate 'good morning' into French.",
]


def smollm2(gguf_path, out):
    """The optional SmolLM2-135M-Instruct checks (make unit-smollm2): the
    converted model as f32 and q8, greedy tokens of the PyTorch reference on
    the same (dequantised) weights, and tokenizer ids from PyPI `tokenizers`."""
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    model, tok, cfg = hf.load(gguf_path)
    meta = {"source": os.path.basename(gguf_path)}
    paths = {}
    for dtype in ("f32", "q8"):
        paths[dtype] = os.path.join(out, "smollm2_%s.pgf" % dtype)
        llama.save_pgf(model, paths[dtype], "SmolLM2-135M-Instruct", dtype, tok, None, meta)
    max_new = 32
    g = Golden()
    g.i("count", [len(SMOLLM2_PROMPTS)])
    g.i("max_new", [max_new])
    for dtype in ("f32", "q8"):
        m = model if dtype == "f32" else llama.load_pgf(paths[dtype])[0]
        for i, prompt in enumerate(SMOLLM2_PROMPTS):
            ids, _ = llama.build_prompt(m.cfg, tok, m.cfg.text_template, None, prompt)
            toks = m.greedy(m.embed(torch.tensor([ids])), max_new, m.cfg.stop_ids,
                            m.cfg.suppress_from)
            g.i("%s.prompt.%d.tokens" % (dtype, i), toks)
            if dtype == "f32":
                g.i("prompt.%d.text" % i, list(prompt.encode("utf-8")))
                print("smollm2: %r -> %r" % (prompt, tok.decode(toks)))
    solo_demo_cases(g, gguf_path, out)
    g.w.write(os.path.join(out, "gen_ref.pgf"))
    t = Golden()
    texts = TRICKY + license_paragraphs()
    t.i("tok.count", [len(texts)])
    for i, text in enumerate(texts):
        t.i("tok.text.%d" % i, list(text.encode("utf-8")))
        for tag, specials in (("s", True), ("p", False)):
            t.i("smollm2.smollm2.%d.%s" % (i, tag), tok.encode(text, specials))
    t.w.write(os.path.join(out, "tok_ref.pgf"))


def solo_demo_cases(g, gguf_path, out, n=6):
    """The SOLO demo on SmolLM2 (committed adapter merged by tools/export/hf.py,
    q8): PyTorch greedy answers and captions of Fashion-MNIST test images on
    the dequantised q8 weights."""
    adapter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "demo", "models",
                           "adapters", "solo_smollm2.pgf")
    if not os.path.exists(adapter) or not os.path.isdir(fashion.FASHION):
        g.i("solo.count", [0])
        return
    model, tok, cfg = hf.load(gguf_path, vision=(solo.PATCH, solo.MAX_SIDE))
    a = hf.apply_adapter(model, tok, adapter)
    im = a.header.image
    path = os.path.join(out, "solo_smollm2_q8.pgf")
    llama.save_pgf(model, path, "solo-smollm2-fashion", "q8", tok,
                   dict(patch_size=im.patch_size, max_side=im.max_side))
    model, _ = llama.load_pgf(path)
    greedy_cases(g, "solo", model, tok, n, show=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--smollm2":
        smollm2(sys.argv[2], sys.argv[3])
        return
    out = sys.argv[1] if len(sys.argv) > 1 else "test/unit/golden"
    os.makedirs(out, exist_ok=True)
    g = Golden()

    tok_a = byte_tokenizer()
    model_a = llama.Decoder(config_a()).init_weights(9, std=0.08).eval()
    image = dict(patch_size=16, max_side=64)
    files = {}
    for dtype, suffix in (("f32", ""), ("bf16", "_bf16"), ("q8", "_q8")):
        path = os.path.join(out, "solo_a%s.pgf" % suffix)
        llama.save_pgf(model_a, path, "tiny solo a", dtype, tok_a, image)
        files[dtype] = path
    # references over the weights as stored (bf16 / q8 dequantised)
    for dtype, tag in (("f32", "a"), ("bf16", "a_bf16"), ("q8", "a_q8")):
        model, _ = llama.load_pgf(files[dtype])
        model_cases(g, tag, model, tok_a, (2, 3), 11)

    tok_b = bpe_tokenizer()
    model_b = llama.Decoder(config_b(tok_b)).init_weights(8, std=0.08).eval()
    path_b = os.path.join(out, "solo_b.pgf")
    llama.save_pgf(model_b, path_b, "tiny solo b", "f32", tok_b, dict(patch_size=8, max_side=32))
    model_b, _ = llama.load_pgf(path_b)
    model_cases(g, "b", model_b, tok_b, (3, 2), 12)
    tokenizer_cases(g, tok_b)
    demo_cases(g, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "demo",
                               "models", "solo_tiny.pgf"))
    # the same model through a Hugging Face folder and tools/export/hf.py
    hf_dir = os.path.join(out, "solo_b_hf")
    write_hf_folder(model_b, tok_b, hf_dir)
    model_hf, tok_hf, _ = hf.load(hf_dir=hf_dir)
    llama.save_pgf(model_hf, os.path.join(out, "solo_b_hf.pgf"), "tiny solo b (HF)", "f32",
                   tok_hf)

    g.w.write(os.path.join(out, "solo_ref.pgf"))


if __name__ == "__main__":
    main()
