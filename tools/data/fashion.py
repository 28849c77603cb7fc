"""Fashion-MNIST (Debian dataset-fashion-mnist) and the caption
and question-answer templates the demo SOLO models are trained on.

  caption: "A black-and-white photo of a sneaker."
  answer ("What is this?" and variants): the class name, e.g. "Sneaker"
"""
import gzip
import os

import numpy as np
import torch

from tools.models import llama
from tools.models.solo import MAX_SIDE, PATCH

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]
CAPTION_NOUNS = ["T-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal",
                 "shirt", "sneaker", "bag", "ankle boot"]
QUESTIONS = ["What is this?", "What is shown?", "What item is this?", "What is in the picture?"]


def caption_of(label):
    noun = CAPTION_NOUNS[label]
    article = "an" if noun[0] in "aeiou" else "a"
    return "A black-and-white photo of %s %s." % (article, noun)


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


class Tasks:
    """Token ids of every (template, question, answer) the model trains on.
    Each sample: prompt ids (with the image block), patch index per position,
    and answer ids ending with the stop token."""

    def __init__(self, cfg, tok, stop_id, patch=PATCH, max_side=MAX_SIDE):
        self.cfg, self.tok, self.stop = cfg, tok, stop_id
        grid = (max_side // patch, max_side // patch)
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
