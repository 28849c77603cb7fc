"""train_solo.py: the demo SOLO models, trained on Fashion-MNIST (Debian
dataset-fashion-mnist) with caption and question-answer templates, the
way the SOLO paper builds its model at small scale: raw 16 x 16 pixel
patches go through one linear layer into the decoder's token stream.

  python3 tools/train_solo.py tiny --out demo/models/solo_tiny.pgf
      the tiny config (d 128, 4 layers), byte tokenizer,
      trained from scratch (a few minutes on 2 cores)
  PYTHONPATH=.whl/site python3 tools/train_solo.py smollm2 --gguf MODEL.gguf --out ADAPTER.pgf
      SmolLM2-135M-Instruct, frozen; trains the patch projection and the
      embeddings of the added image tokens, written as an adapter that
      tools/convert_hf.py --adapter merges into the converted model

Images: grey 28 x 28 -> RGB -> SOLO's size rule with P = 16 and a largest
side of 32 (28 -> 32 x 32 by PIL's bilinear resize, as models/image_resize.c) ->
/255 -> ImageNet mean/std -> 2 x 2 channel-major patches.
Tasks (the templates stored in the model):
  caption: "A black-and-white photo of a sneaker."
  answer ("What is this?" and variants): the class name, e.g. "Sneaker"
Everything is seeded; the printed accuracy is PyTorch greedy decoding on
held-out test images (tools/eval_solo.py measures it on any .pgf).
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama  # noqa: E402
import pgf  # noqa: E402
import tokenizer_ref as tr  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]
CAPTION_NOUNS = ["T-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal",
                 "shirt", "sneaker", "bag", "ankle boot"]
QUESTIONS = ["What is this?", "What is shown?", "What item is this?", "What is in the picture?"]
PATCH, MAX_SIDE = 16, 32


def caption_of(label):
    noun = CAPTION_NOUNS[label]
    article = "an" if noun[0] in "aeiou" else "a"
    return "A black-and-white photo of %s %s." % (article, noun)


# ---- data -------------------------------------------------------------------

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(split):
    """(images [N, 28, 28] uint8, labels [N]) of "train" or "t10k"."""
    images = read_idx(os.path.join(FASHION, "%s-images-idx3-ubyte.gz" % split))
    labels = read_idx(os.path.join(FASHION, "%s-labels-idx1-ubyte.gz" % split))
    return images, labels.astype(np.int64)


def preprocess(grey):
    """A grey image [H, W] uint8 -> (patches [nH*nW, 3*P*P] float32, nH, nW)
    by SOLO's rule with PIL's bilinear resize (what models/image_resize.c does)."""
    from PIL import Image
    h, w = grey.shape
    tw, th = llama.solo_size(w, h, PATCH, MAX_SIDE)
    img = Image.fromarray(grey, "L").convert("RGB")
    if (tw, th) != (w, h):
        img = img.resize((tw, th), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return llama.patchify(llama.normalise(x), PATCH)


def patches_of(images):
    """[N, nH*nW, 3*P*P] for a batch of equally sized grey images."""
    out = [preprocess(im)[0] for im in images]
    return torch.stack(out)


# ---- sequences ------------------------------------------------------------------

class Tasks:
    """Token ids of every (template, question, answer) the model trains on.
    Each sample: prompt ids (with the image block), patch index per position,
    and answer ids ending with the stop token."""

    def __init__(self, cfg, tok, stop_id):
        self.cfg, self.tok, self.stop = cfg, tok, stop_id
        grid = (MAX_SIDE // PATCH, MAX_SIDE // PATCH)
        self.grid = grid
        self.caption_prompt = llama.build_prompt(cfg, tok, cfg.caption_template, grid)
        self.answer_prompts = [llama.build_prompt(cfg, tok, cfg.answer_template, grid, q)
                               for q in QUESTIONS]
        self.caption_answers = [tok.encode_ref(" " * cfg.answer_space + caption_of(c), False)
                                + [stop_id] for c in range(10)]
        self.class_answers = [tok.encode_ref(" " * cfg.answer_space + CLASSES[c], False)
                              + [stop_id] for c in range(10)]

    def batch(self, labels, rng, caption_share=0.3):
        """Teacher-forcing batch: ids [B, T], patch_index [B, T] (indices into
        the batch's patches, image i owns 4i..4i+3), targets [B, T] (-100:
        no loss)."""
        seqs = []
        for i, c in enumerate(labels):
            if rng.random_sample() < caption_share:
                (ids, pidx), ans = self.caption_prompt, self.caption_answers[c]
            else:
                (ids, pidx), ans = self.answer_prompts[rng.randint(len(QUESTIONS))], \
                    self.class_answers[c]
            n_p = max(pidx) + 1
            pidx = [p + i * n_p if p >= 0 else -1 for p in pidx]
            seqs.append((ids + ans, pidx + [-1] * len(ans), len(ids)))
        T = max(len(s[0]) for s in seqs)
        ids = torch.zeros(len(seqs), T, dtype=torch.long)
        pidx = torch.full((len(seqs), T), -1, dtype=torch.long)
        tgt = torch.full((len(seqs), T), -100, dtype=torch.long)
        for b, (s, p, n_prompt) in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
            pidx[b, :len(p)] = torch.tensor(p)
            # position t predicts token t + 1: answers start after the prompt
            tgt[b, n_prompt - 1:len(s) - 1] = torch.tensor(s[n_prompt:])
        return ids, pidx, tgt


def loss_of(model, ids, pidx, patches, tgt):
    """Cross-entropy over answer positions only (logits of those rows)."""
    x = model.embed(ids, pidx, patches)
    h = model.hidden(x)
    sel = tgt >= 0
    logits = model.logits(h[sel])
    return F.cross_entropy(logits.float(), tgt[sel])


@torch.no_grad()
def greedy_batch(model, prompt, patches, max_new, stop_ids, suppress_from):
    """Greedy answers for a batch sharing one prompt layout (ids, pidx):
    patches [B, nP, 3P^2].  Returns a list of token lists."""
    ids, pidx = prompt
    B, n_p = patches.shape[0], patches.shape[1]
    ids_t = torch.tensor([ids] * B)
    pidx_t = torch.tensor([[p + b * n_p if p >= 0 else -1 for p in pidx] for b in range(B)])
    x = model.embed(ids_t, pidx_t, patches.reshape(B * n_p, -1))
    caches = model.new_caches()
    h = model.hidden(x, 0, caches)
    pos = x.shape[1]
    out = [[] for _ in range(B)]
    done = [False] * B
    for _ in range(max_new):
        logits = model.logits(h[:, -1]).float()
        if suppress_from:
            logits[:, suppress_from:] = float("-inf")
        nxt = logits.argmax(-1)
        for b in range(B):
            t = int(nxt[b])
            if not done[b]:
                if t in stop_ids:
                    done[b] = True
                else:
                    out[b].append(t)
        if all(done):
            break
        h = model.hidden(model.tok(nxt[:, None]), pos, caches)
        pos += 1
    return out


def evaluate(model, tok, tasks, images, labels, batch=50, max_answer=16, max_caption=56):
    """Answer accuracy ("What is this?" -> exact class name) and caption
    accuracy (exact caption) of greedy decoding."""
    cfg = model.cfg
    model.eval()
    right_a = right_c = 0
    for s in range(0, len(images), batch):
        p = patches_of(images[s:s + batch])
        lab = labels[s:s + batch]
        ans = greedy_batch(model, tasks.answer_prompts[0], p, max_answer, cfg.stop_ids,
                           cfg.suppress_from)
        cap = greedy_batch(model, tasks.caption_prompt, p, max_caption, cfg.stop_ids,
                           cfg.suppress_from)
        for b, c in enumerate(lab):
            right_a += tok.decode(ans[b]).strip() == CLASSES[c]
            right_c += tok.decode(cap[b]).strip() == caption_of(c)
    return right_a / len(images), right_c / len(images)


# ---- models ---------------------------------------------------------------------

def tiny_model(seed):
    specials = [("<s>", 256), ("</s>", 257), ("<vision>", 258), ("<vpatch>", 259),
                ("<vrow_sep>", 260), ("<vframe_sep>", 261), ("</vision>", 262)]
    tok = tr.TokenizerSpec("bytes", specials=specials)
    cfg = llama.DecoderConfig(
        d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=352, vocab_size=263,
        norm_eps=1e-5, rope_theta=10000.0, tied=False, max_positions=256,
        bos_id=256, eos_id=257, stop_ids=[257], suppress_from=258,
        patch_size=PATCH, max_image_side=MAX_SIDE, vision_id=258, vpatch_id=259,
        vrow_sep_id=260, vision_close_id=262,
        caption_template="<s>{image}Caption:", answer_template="<s>{image}Q: {question}\nA:",
        text_template="<s>{prompt}", max_new_tokens=48)
    cfg.answer_space = 1
    model = llama.Decoder(cfg).init_weights(seed, std=0.02)
    with torch.no_grad():
        for layer in model.layers:
            layer.ln1.weight.fill_(1.0)
            layer.ln2.weight.fill_(1.0)
        model.lnf.weight.fill_(1.0)
    return model, tok


def smollm2_model(gguf):
    import convert_hf
    model, tok, _ = convert_hf.load(gguf, vision=(PATCH, MAX_SIDE))
    cfg = model.cfg
    turn = "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"
    cfg.caption_template = turn % "{image}Describe this image."
    cfg.answer_template = turn % "{image}{question}"
    cfg.answer_space = 0
    cfg.max_new_tokens = 48
    return model, tok


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", choices=["tiny", "smollm2"])
    ap.add_argument("--gguf")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--eval", type=int, default=1000, help="test images to evaluate on")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", help="smollm2: start from this adapter")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.RandomState(args.seed)

    train_x, train_y = load_fashion("train")
    test_x, test_y = load_fashion("t10k")
    if args.base == "tiny":
        model, tok = tiny_model(args.seed)
        params = list(model.parameters())
        steps, lr = args.steps or 3000, args.lr or 2e-3
    else:
        if not args.gguf:
            ap.error("smollm2 needs --gguf")
        model, tok = smollm2_model(args.gguf)
        for p in model.parameters():
            p.requires_grad_(False)
        model.patch.weight.requires_grad_(True)
        model.tok.weight.requires_grad_(True)   # only the added rows are kept
        params = [model.patch.weight, model.tok.weight]
        steps, lr = args.steps or 300, args.lr or 2e-3
        if args.resume:
            import convert_hf
            convert_hf.apply_adapter(model, tok, args.resume)
    cfg = model.cfg
    tasks = Tasks(cfg, tok, cfg.stop_ids[0] if args.base == "tiny" else
                  [i for s, i in tok.specials if s == "<|im_end|>"][0])
    base_rows = cfg.suppress_from
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0 if args.base == "smollm2" else 0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.05)
    order = rng.permutation(len(train_x))
    t0 = time.time()
    model.train()
    for step in range(steps):
        idx = order[(step * args.batch) % len(order):][:args.batch]
        if len(idx) < args.batch:
            idx = order[:args.batch]
        patches = patches_of(train_x[idx]).reshape(-1, cfg.patch_dim)
        ids, pidx, tgt = tasks.batch(train_y[idx], rng)
        loss = loss_of(model, ids, pidx, patches, tgt)
        opt.zero_grad()
        loss.backward()
        if args.base == "smollm2":
            model.tok.weight.grad[:base_rows] = 0   # the LLM's own rows stay frozen
        opt.step()
        sched.step()
        if step % 10 == 0 or step == steps - 1:
            print("step %d/%d loss %.4f (%.1f s)" % (step, steps, float(loss), time.time() - t0),
                  flush=True)
    model.eval()
    train_time = time.time() - t0
    acc_a, acc_c = evaluate(model, tok, tasks, test_x[:args.eval], test_y[:args.eval])
    print("test accuracy on %d images: answer %.3f, caption %.3f (train %.0f s)"
          % (args.eval, acc_a, acc_c, train_time))
    meta = {"dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)",
            "trained_by": "tools/train_solo.py %s%s" % (
                args.base, " (resumed from %s)" % os.path.basename(args.resume)
                if args.resume else ""),
            "train_steps": steps, "batch": args.batch, "seed": args.seed,
            "classes": ",".join(CLASSES),
            "test_answer_accuracy": "%.4f" % acc_a, "test_caption_accuracy": "%.4f" % acc_c,
            "test_images": args.eval}
    image = dict(patch_size=PATCH, max_side=MAX_SIDE)
    if args.base == "tiny":
        llama.save_pgf(model, args.out, "solo-tiny-fashion", "f32", tok, image, meta)
    else:
        write_adapter(model, tok, args.out, base_rows, image, meta)
    print("wrote %s" % args.out)


def write_adapter(model, tok, path, first_row, image, meta):
    """The trained parts of a frozen-LLM SOLO: patch projection, added token
    rows, templates and image settings (merged by convert_hf.py --adapter)."""
    w = pgf.Writer("solo_adapter", "SOLO adapter")
    llama.fill_config(w.header.solo, model.cfg)
    w.add("dec.emb.patch.weight", model.patch.weight.detach())
    w.add("adapter.tok_rows", model.tok.weight.detach()[first_row:])
    im = w.header.image
    im.patch_size, im.max_side = image["patch_size"], image["max_side"]
    im.mean.extend(llama.IMAGENET_MEAN)
    im.std.extend(llama.IMAGENET_STD)
    for k, v in meta.items():
        w.header.metadata[k] = str(v)
    w.header.metadata["adapter.first_row"] = str(first_row)
    w.write(path)


if __name__ == "__main__":
    main()
