"""The demo UniFork model, trained from scratch on Fashion-MNIST (Debian
dataset-fashion-mnist) in two stages on the CPU:

  1. the image tokenizer: a small ViT encoder (tools.models.unifork
     .ImageEncoder: 4 x 4 patches of the 32 x 32 image, 2 pre-LN layers),
     residual quantisation (depth 2, one shared
     codebook of 256 x 32, straight-through, commitment loss, dead codes
     restarted) and the pixel decoder (tools/models/unifork.py), trained to
     reconstruct the images;
  2. the Y-shaped LLM's generation path (tiny config: d 128, 4 layers, 2
     shared) with the projector and the depth head, trained by teacher
     forcing to predict every image position's codes after the prompt
     "a photo of a <noun>" (SOLO's caption nouns), one prompt in ten
     replaced by the unconditional prompt so that guidance works.

The understanding branch is left as initialised: this demo draws images,
it does not describe them.  Images: grey 28 x 28 -> RGB -> 32 x 32 by PIL's
bilinear resize (what SOLO reads) -> [-1, 1].

  python3 -m tools.train.unifork --out demo/models/unifork_fashion.pgf

Everything is seeded; about half an hour on 2 cores.
"""
import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tools.data import fashion
from tools.models import llama
from tools.models import tokenizer as tr
from tools.models import unifork as uf

SIDE = 32
PATCH = 4
GRID = SIDE // PATCH


def images_of(grey):
    """uint8 [N, 28, 28] -> float [N, 3, 32, 32] in [-1, 1] (PIL bilinear, as
    models/image_resize.c)."""
    from PIL import Image
    out = np.empty((len(grey), SIDE, SIDE), np.float32)
    for i, g in enumerate(grey):
        out[i] = np.asarray(Image.fromarray(g, "L").resize((SIDE, SIDE), Image.BILINEAR), np.float32)
    x = torch.from_numpy(out / 127.5 - 1.0)[:, None]
    return x.expand(-1, 3, -1, -1).contiguous()


def quantise(z, codebook, depth):
    """Straight-through residual quantisation: (z_q with z's gradient, codes,
    commitment loss, codebook loss)."""
    codes, zq = uf.rq_quantize(z.detach().reshape(-1, z.shape[-1]), codebook.detach(), depth)
    codes = codes.reshape(*z.shape[:-1], depth)
    sums = codebook[codes].cumsum(-2)                                  # [.., depth, e]
    target = z.detach()[..., None, :]
    book = F.mse_loss(sums, target.expand_as(sums))
    commit = F.mse_loss(z, zq.reshape(z.shape))
    return z + (zq.reshape(z.shape) - z).detach(), codes, commit, book


def patches_of(x):
    """[N, 3, 32, 32] -> channel-major patches [N, 64, 3 P^2] (llama.patchify's order)."""
    b = x.shape[0]
    p = x.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)          # [b, 3, 8, 8, P, P]
    return p.permute(0, 2, 3, 1, 4, 5).reshape(b, GRID * GRID, -1)


def train_tokenizer(args, x_train, c, ec, log):
    g = torch.Generator().manual_seed(args.seed)
    enc = uf.ImageEncoder(ec)
    dec = uf.PixelDecoder(c.decoder)
    codebook = nn.Parameter(torch.randn(c.head.codebook_size, c.head.code_dim) * 0.1)
    with torch.no_grad():          # start the codebook on encoder outputs and residuals
        z = enc(patches_of(x_train[:512])).reshape(-1, c.head.code_dim)
        codebook[: c.head.codebook_size // 2] = z[torch.randperm(len(z), generator=g)[: c.head.codebook_size // 2]]
        codebook[c.head.codebook_size // 2:] = 0.1 * torch.randn(c.head.codebook_size // 2, c.head.code_dim,
                                                                 generator=g)
    params = list(enc.parameters()) + list(dec.parameters()) + [codebook]
    opt = torch.optim.Adam(params, lr=args.lr1)
    usage = torch.zeros(c.head.codebook_size)
    t0 = time.time()
    for step in range(args.steps1):
        idx = torch.randint(0, len(x_train), (args.batch1,), generator=g)
        x = x_train[idx]
        z = enc(patches_of(x))
        zq, codes, commit, book = quantise(z, codebook, c.head.depth)
        out = dec(zq.transpose(1, 2).reshape(len(x), -1, GRID, GRID))
        recon = F.mse_loss(out, x)
        loss = recon + book + 0.25 * commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        usage += torch.bincount(codes.reshape(-1), minlength=c.head.codebook_size).float()
        if (step + 1) % args.log_every == 0:
            dead = (usage == 0).nonzero().flatten()
            if len(dead):                  # restart unused codes on recent residuals
                with torch.no_grad():
                    r = (z - zq).detach().reshape(-1, c.head.code_dim)
                    pick = torch.randint(0, len(r), (len(dead),), generator=g)
                    codebook[dead] = r[pick] + z.detach().reshape(-1, c.head.code_dim)[pick] * 0.5
            usage.zero_()
            log("stage 1 step %d: recon %.4f codebook %.4f commit %.4f, %d dead codes restarted (%.0f s)"
                % (step + 1, recon.item(), book.item(), commit.item(), len(dead), time.time() - t0))
    return enc, dec, codebook.detach()


def encode_all(enc, codebook, x, depth):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 500):
            z = enc(patches_of(x[i:i + 500]))
            out.append(uf.rq_quantize(z.reshape(-1, z.shape[-1]), codebook, depth)[0].reshape(len(z), -1, depth))
    return torch.cat(out)


def prompt_of(label):
    return "a photo of a " + fashion.CAPTION_NOUNS[label]


def train_llm(args, model, tok, codes, labels, log):
    """Stage 2: the generation path, projector and depth head."""
    c = model.c
    g = torch.Generator().manual_seed(args.seed + 1)
    params = (list(model.llm.layers[:c.shared].parameters()) + list(model.gen_layers.parameters())
              + list(model.norm_gen.parameters()) + list(model.linear1.parameters())
              + list(model.linear2.parameters()) + [model.boi_eoi] + list(model.head.parameters())
              + list(model.llm.tok.parameters()))
    opt = torch.optim.AdamW(params, lr=args.lr2, weight_decay=0.01)
    lengths = {}
    for label in range(10):
        n = len(tok.encode(c.gen_template.replace("{prompt}", prompt_of(label))))
        lengths.setdefault(n, []).append(label)
    by_label = [torch.nonzero(labels == k).flatten() for k in range(10)]
    uncond_ids = tok.encode(c.gen_template.replace("{prompt}", c.uncond_prompt))
    t0 = time.time()
    for step in range(args.steps2):
        lr = args.lr2 * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps2))
        for group in opt.param_groups:
            group["lr"] = lr
        if torch.rand(1, generator=g).item() < 0.1:
            idx = torch.randint(0, len(codes), (args.batch2,), generator=g)
            ids = uncond_ids
        else:
            label = int(torch.randint(0, 10, (1,), generator=g))
            same = lengths[len(tok.encode(c.gen_template.replace("{prompt}", prompt_of(label))))]
            pick = torch.tensor(same)[torch.randint(0, len(same), (args.batch2,), generator=g)]
            idx = torch.stack([by_label[int(k)][torch.randint(0, len(by_label[int(k)]), (1,), generator=g)][0]
                               for k in pick])
            prompts = [tok.encode(c.gen_template.replace("{prompt}", prompt_of(int(labels[i])))) for i in idx]
            ids = None
        cb = codes[idx]                                                   # [B, 64, D]
        b = len(idx)
        text = torch.tensor([ids] * b) if ids is not None else torch.tensor(prompts)
        sums = model.codebook[cb].sum(2)                                  # [B, 64, e]
        x = torch.cat([model.llm.tok(text), model.boi_eoi[None, :1].expand(b, 1, -1),
                       model.project(sums[:, :-1])], 1)
        h = model.gen_hidden(x, 0, [None] * c.llm.n_layers)[:, text.shape[1]:]   # [B, 64, d]
        logits = model.head(h.reshape(-1, c.llm.d_model), cb.reshape(-1, c.head.depth), model.codebook)
        loss = F.cross_entropy(logits.reshape(-1, c.head.codebook_size), cb.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % args.log_every == 0:
            log("stage 2 step %d: loss %.4f lr %.2e (%.0f s)" % (step + 1, loss.item(), lr, time.time() - t0))
    return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="demo/models/unifork_fashion.pgf")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps1", type=int, default=2000)
    ap.add_argument("--batch1", type=int, default=64)
    ap.add_argument("--lr1", type=float, default=2e-3)
    ap.add_argument("--steps2", type=int, default=1500)
    ap.add_argument("--batch2", type=int, default=32)
    ap.add_argument("--lr2", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    def log(msg):
        print(msg, flush=True)

    grey, labels = fashion.load_fashion("train")
    x_train = images_of(grey)
    labels = torch.from_numpy(np.asarray(labels, np.int64))
    tok = tr.TokenizerSpec("bytes", specials=[("<s>", 256), ("</s>", 257)])
    c = uf.UniForkConfig(
        llm=llama.DecoderConfig(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=384,
                                vocab_size=258, norm_eps=1e-6, rope_theta=1e4, qkv_bias=True,
                                tied=True, max_positions=128),
        image_grid=GRID,
        head=uf.DepthHeadConfig(d=128, width=128, heads=4, d_ff=256, blocks=1, depth=2,
                                codebook_size=256, code_dim=32),
        decoder=uf.PixelDecoderConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, z_channels=32,
                                      embed_dim=32, groups=8),
        cfg_scale=2.0, gen_template="<s>{prompt}", uncond_prompt="")

    ec = uf.ImageEncoderConfig(side=SIDE, patch=PATCH, d=64, layers=2, heads=4, d_ff=256,
                               code_dim=c.head.code_dim)
    enc, dec, codebook = train_tokenizer(args, x_train, c, ec, log)
    codes = encode_all(enc, codebook, x_train, c.head.depth)
    model = uf.UniFork(c)
    model.llm.init_weights(args.seed, std=0.02)
    model.vq.load_state_dict(dec.state_dict())
    with torch.no_grad():
        model.codebook.copy_(codebook)
        for j, layer in enumerate(model.gen_layers):      # the fork starts as a copy
            layer.load_state_dict(model.llm.layers[c.shared + j].state_dict())
    model.codebook.requires_grad_(False)
    model.vq.requires_grad_(False)
    final = train_llm(args, model, tok, codes, labels, log)
    meta = {"dataset": "Fashion-MNIST train (Debian dataset-fashion-mnist), 60,000 images",
            "trained_by": "python3 -m tools.train.unifork --seed %d --steps1 %d --steps2 %d"
            % (args.seed, args.steps1, args.steps2),
            "stage2_loss": "%.4f" % final,
            "prompts": "a photo of a <noun>: " + ", ".join(fashion.CAPTION_NOUNS)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    size = uf.save_pgf(model.eval(), args.out, "unifork-fashion", tokenizer=tok, metadata=meta,
                       encoder=enc.eval())
    log("wrote %s (%.1f MB)" % (args.out, size / 1e6))


if __name__ == "__main__":
    main()
