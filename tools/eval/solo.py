"""Fashion-MNIST accuracy of a SOLO model file in PyTorch
(tools/models/llama.py over the weights exactly as the file stores them).

  python3 -m tools.eval.solo demo/models/solo_tiny.pgf [--n 1000] [--offset 0] [--json OUT]

For each test image (Debian dataset-fashion-mnist, t10k split, from
--offset): greedy decoding of the model's answer template with "What is
this?" (right when the answer is exactly the class name) and of its caption
template (right when it is exactly "A black-and-white photo of a <noun>.").
Images go through the file's own preprocessing settings (patch size,
largest side) with PIL's bilinear resize, as models/image_resize.c does.
Also prints a few examples and the confusion of the answers.
"""
import argparse
import json
import time

import numpy as np
import torch

from tools.data.fashion import CLASSES, Tasks, caption_of, load_fashion
from tools.models import llama
from tools.models import tokenizer as tr
from tools.models.solo import MAX_SIDE, PATCH, greedy_batch, patches_of


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the counts to this file (for the SQL test)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    model, m = llama.load_pgf(args.model)
    tok = tr.TokenizerSpec.from_header(m.header.tokenizer)
    cfg = model.cfg
    patch, side = PATCH, MAX_SIDE
    if m.header.HasField("image"):
        patch, side = m.header.image.patch_size, m.header.image.max_side
    cfg.answer_space = 0
    stop = cfg.stop_ids[0] if cfg.stop_ids else cfg.eos_id
    tasks = Tasks(cfg, tok, stop, patch, side)
    images, labels = load_fashion("t10k")
    images = images[args.offset:args.offset + args.n]
    labels = labels[args.offset:args.offset + args.n]

    t0 = time.time()
    right_a = right_c = 0
    confusion = np.zeros((10, 11), dtype=np.int64)    # column 10: not a class name
    examples = []
    for s in range(0, len(images), args.batch):
        p = patches_of(images[s:s + args.batch], patch, side)
        ans = greedy_batch(model, tasks.answer_prompts[0], p, 16, cfg.stop_ids,
                           cfg.suppress_from)
        cap = greedy_batch(model, tasks.caption_prompt, p, 56, cfg.stop_ids,
                           cfg.suppress_from)
        for b, c in enumerate(labels[s:s + args.batch]):
            a_text = tok.decode(ans[b]).strip()
            c_text = tok.decode(cap[b]).strip()
            right_a += a_text == CLASSES[c]
            right_c += c_text == caption_of(c)
            col = CLASSES.index(a_text) if a_text in CLASSES else 10
            confusion[c, col] += 1
            if len(examples) < 5:
                examples.append((CLASSES[c], a_text, c_text))
    n = len(images)
    for truth, a_text, c_text in examples:
        print("  %-12s answer %-14r caption %r" % (truth, a_text, c_text))
    print("answer confusion (rows: truth, columns: answer; last: other text):")
    for c in range(10):
        print("  %-12s %s" % (CLASSES[c], " ".join("%4d" % v for v in confusion[c])))
    print("%s: %d test images (offset %d): answer accuracy %.3f, caption accuracy %.3f (%.0f s)"
          % (args.model, n, args.offset, right_a / n, right_c / n, time.time() - t0))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"images": n, "offset": args.offset, "answers_right": int(right_a),
                       "captions_right": int(right_c)}, f)


if __name__ == "__main__":
    main()
