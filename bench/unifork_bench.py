"""Seconds per image of a "unifork" model in PyTorch (tools/models/unifork.py,
the reference: the LLM with a key/value cache, the depth head recomputing
every depth as the released code does), split like bench/unifork_bench.c:
the LLM steps, the depth head and the pixel decoder.  One thread, f32.

    python3 -m bench.unifork_bench MODEL.pgf [RUNS]
"""
import sys
import time

import torch

from tools.models import tokenizer as tr
from tools.models import unifork as uf


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model, m = uf.load_pgf(path)
    tok = tr.TokenizerSpec.from_header(m.header.tokenizer)
    c = model.c
    cond = tok.encode(c.gen_template.replace("{prompt}", "a photo of a bag"))
    uncond = tok.encode(c.gen_template.replace("{prompt}", c.uncond_prompt))
    hidden = torch.randn(2, c.llm.d_model)
    best = [1e30, 1e30, 1e30]
    for _ in range(runs):
        t0 = time.perf_counter()
        codes = model.generate_codes(cond, uncond)
        model.decode_codes(codes)
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(c.image_grid * c.image_grid):
            chosen = torch.zeros(c.head.depth, dtype=torch.long)
            for j in range(c.head.depth):
                lg = model.head(hidden, chosen.repeat(2, 1), model.codebook)[:, j]
                chosen[j] = int(torch.argmax(lg[1] + c.cfg_scale * (lg[0] - lg[1])))
        head = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.decode_codes(codes)
        decode = time.perf_counter() - t0
        best = [min(a, b) for a, b in zip(best, (total, head, decode))]
    total, head, decode = best
    side = c.image_grid * c.decoder.upscale
    print("pytorch: %.2f ms per image (%dx%d pixels, %d positions x %d codes): LLM %.2f ms, "
          "depth head %.2f ms, pixel decoder %.2f ms"
          % (total * 1e3, side, side, c.image_grid ** 2, c.head.depth,
             (total - head - decode) * 1e3, head * 1e3, decode * 1e3))


if __name__ == "__main__":
    main()
