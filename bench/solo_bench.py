"""solo_bench.py: prefill and decode speed of PyTorch (tools/models/llama.py, the
reference decoder with a KV cache) on the weights of a "solo" model file,
the peer of bench/solo_bench.c.

  OPENBLAS_NUM_THREADS=1 python3 -m bench.solo_bench MODEL.pgf \
      [PROMPT_TOKENS [NEW_TOKENS [THREADS]]]

Weights are dequantised to float32 (PyTorch has no bf16/q8 CPU GEMV path
that would be a fair peer).  Greedy decoding for exactly NEW_TOKENS steps;
best of three runs.
"""
import sys
import time

import torch

from tools.models import llama


def main():
    path = sys.argv[1]
    n_prompt = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    n_new = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    model, _ = llama.load_pgf(path)
    limit = model.cfg.suppress_from or model.cfg.vocab_size
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(100, limit, (1, n_prompt), generator=g)
    best_p, best_d = 1e30, 1e30
    for _ in range(3):
        caches = model.new_caches()
        t0 = time.perf_counter()
        h = model.hidden(model.tok(ids), 0, caches)
        logits = model.logits(h[:, -1])
        t1 = time.perf_counter()
        pos = n_prompt
        for i in range(n_new):
            tok = int(torch.argmax(logits[0, :limit]))
            if i + 1 < n_new:
                h = model.hidden(model.tok(torch.tensor([[tok]])), pos, caches)
                logits = model.logits(h[:, -1])
                pos += 1
        t2 = time.perf_counter()
        best_p, best_d = min(best_p, t1 - t0), min(best_d, t2 - t1)
    print("%s (PyTorch %s, f32): %d threads, prefill %d tokens %.1f ms (%.0f tok/s), "
          "decode %d tokens %.1f ms (%.1f tok/s)"
          % (path, torch.__version__, threads, n_prompt, best_p * 1e3, n_prompt / best_p,
             n_new, best_d * 1e3, (n_new - 1) / best_d))


if __name__ == "__main__":
    main()
