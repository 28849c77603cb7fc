"""The demo SOLO models, trained on Fashion-MNIST (Debian
dataset-fashion-mnist) with caption and question-answer templates, the
way the SOLO paper builds its model at small scale: raw 16 x 16 pixel
patches go through one linear layer into the decoder's token stream.

  python3 -m tools.train.solo tiny --out demo/models/solo_tiny.pgf
      the tiny config (d 128, 4 layers), byte tokenizer,
      trained from scratch (a few minutes on 2 cores)
  PYTHONPATH=.whl/site python3 -m tools.train.solo smollm2 --gguf MODEL.gguf --out ADAPTER.pgf
      SmolLM2-135M-Instruct, frozen; trains the patch projection and the
      embeddings of the added image tokens, written as an adapter that
      python3 -m tools.export.hf --adapter merges into the converted model

Images: grey 28 x 28 -> RGB -> SOLO's size rule with P = 16 and a largest
side of 32 (28 -> 32 x 32 by PIL's bilinear resize, as models/image_resize.c) ->
/255 -> ImageNet mean/std -> 2 x 2 channel-major patches.
Tasks (the templates stored in the model):
  caption: "A black-and-white photo of a sneaker."
  answer ("What is this?" and variants): the class name, e.g. "Sneaker"
Everything is seeded; the printed accuracy is PyTorch greedy decoding on
held-out test images (tools/eval/solo.py measures it on any .pgf).
"""
import argparse
import os
import time

import numpy as np
import torch

from tools import pgf
from tools.data.fashion import CLASSES, Tasks, load_fashion
from tools.export import hf
from tools.metrics.solo import evaluate
from tools.models import llama
from tools.models import tokenizer as tr
from tools.models.solo import MAX_SIDE, PATCH, loss_of, patches_of


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
    model, tok, _ = hf.load(gguf, vision=(PATCH, MAX_SIDE))
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
            hf.apply_adapter(model, tok, args.resume)
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
            "trained_by": "python3 -m tools.train.solo %s%s" % (
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
    rows, templates and image settings (merged by tools.export.hf --adapter)."""
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
