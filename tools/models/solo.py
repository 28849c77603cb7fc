"""The SOLO pieces around the decoder of tools/models/llama.py:
image preprocessing as the C model does it, the training loss over answer
positions and batched greedy decoding.

Images: grey 28 x 28 -> RGB -> SOLO's size rule with P = 16 and a largest
side of 32 (28 -> 32 x 32 by PIL's bilinear resize, as models/image_resize.c) ->
/255 -> ImageNet mean/std -> 2 x 2 channel-major patches.
"""
import numpy as np
import torch
import torch.nn.functional as F

from tools.models import llama

PATCH, MAX_SIDE = 16, 32


def preprocess(grey, patch=PATCH, max_side=MAX_SIDE):
    """A grey image [H, W] uint8 -> (patches [nH*nW, 3*P*P] float32, nH, nW)
    by SOLO's rule with PIL's bilinear resize (what models/image_resize.c does)."""
    from PIL import Image
    h, w = grey.shape
    tw, th = llama.solo_size(w, h, patch, max_side)
    img = Image.fromarray(grey, "L").convert("RGB")
    if (tw, th) != (w, h):
        img = img.resize((tw, th), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return llama.patchify(llama.normalise(x), patch)


def patches_of(images, patch=PATCH, max_side=MAX_SIDE):
    """[N, nH*nW, 3*P*P] for a batch of equally sized grey images."""
    out = [preprocess(im, patch, max_side)[0] for im in images]
    return torch.stack(out)


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
