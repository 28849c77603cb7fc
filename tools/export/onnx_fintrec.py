"""A FinTRec .pgf model as an ONNX graph, the peer that
bench/ times the C model against (ONNX Runtime on the same weights).

    python -m tools.export.onnx_fintrec MODEL.pgf OUT.onnx [--check]

The graph takes the padded token tables of tools.models.fintrec.collate (the
request layout is built in Python, as a user of ONNX Runtime would have to)
and returns the top k item rows and scores, seen items excluded:

  inputs   kind, row, type, chan, pos, static_k, static_v  int64 [B, L]
           tf float32 [B, L, 9]; see bool [B, L, L]; dist float32 [B, L, L]
           placement int64 [B]; readout int64 [B] (index of the read-out token)
           fm float32 [B, d_fm] (only when the model has an FM token)
           exclude float32 [B, n_items] (0, or -inf for rows never returned)
  outputs  scores float32 [B, k], rows int64 [B, k]

B and L are dynamic; k is fixed at export (default 10).  feeds() builds
the inputs for a list of fintrec.Sequence; --check compares ONNX Runtime
with the PyTorch reference (needs the onnxruntime package, which is for
tools and benchmarks only, never the serving path).
"""
import argparse
import sys

import numpy as np
import torch

from tools.export.fintrec import load_pgf
from tools.models.fintrec import build, collate, excluded_rows, topk

INT_INPUTS = ("kind", "row", "type", "chan", "pos", "static_k", "static_v")


class Scorer(torch.nn.Module):
    def __init__(self, model, k):
        super().__init__()
        self.model = model
        self.k = k

    def forward(self, kind, row, type, chan, pos, static_k, static_v, tf, see, dist,
                placement, readout, exclude, fm=None):
        batch = {"kind": kind, "row": row, "type": type, "chan": chan, "pos": pos,
                 "static_k": static_k, "static_v": static_v, "tf": tf, "see": see,
                 "dist": dist, "placement": placement}
        if fm is not None:
            batch["fm"] = fm
        hid = self.model.hidden(batch)                          # [B, L, d]
        idx = readout.clamp(min=0).view(-1, 1, 1).expand(-1, 1, hid.shape[-1])
        h = torch.gather(hid, 1, idx).squeeze(1)
        h = h * (readout >= 0).to(h.dtype).unsqueeze(-1)        # empty SASRec request: zeros
        logits = self.model.logits(h, placement) + exclude
        scores, rows = torch.topk(logits, self.k, dim=-1)
        return scores, rows


def feeds(model, seqs, exclude_seen=True):
    """ONNX Runtime inputs for serving requests (list of fintrec.Sequence)."""
    cfg = model.cfg
    lays = [build(cfg, s) for s in seqs]
    b = collate(cfg, lays, [s.fm for s in seqs], [s.placement for s in seqs])
    out = {k: b[k].numpy().astype(np.int64) for k in INT_INPUTS}
    out["tf"] = b["tf"].numpy().astype(np.float32)
    out["see"] = b["see"].numpy()
    out["dist"] = b["dist"].numpy().astype(np.float32)
    out["placement"] = b["placement"].numpy().astype(np.int64)
    out["readout"] = np.array([len(x["kind"]) - 1 for x in lays], np.int64)
    exclude = np.zeros((len(seqs), cfg.n_items), np.float32)
    for i, s in enumerate(seqs):
        exclude[i, list(excluded_rows(cfg, s, exclude_seen))] = -np.inf
    out["exclude"] = exclude
    if cfg.d_fm:
        out["fm"] = b["fm"].numpy().astype(np.float32)
    return out


def export(model, path, k=10):
    cfg = model.cfg
    scorer = Scorer(model.float().eval(), k)
    example = [s for s in _examples(cfg, 2)]
    f = feeds(model, example)
    names = list(INT_INPUTS) + ["tf", "see", "dist", "placement", "readout", "exclude"]
    if cfg.d_fm:
        names.append("fm")
    args = tuple(torch.from_numpy(f[n]) for n in names)
    dyn = {n: {0: "B", 1: "L"} for n in INT_INPUTS}
    dyn.update({"tf": {0: "B", 1: "L"}, "see": {0: "B", 1: "L", 2: "L"},
                "dist": {0: "B", 1: "L", 2: "L"}, "placement": {0: "B"},
                "readout": {0: "B"}, "exclude": {0: "B"}, "fm": {0: "B"},
                "scores": {0: "B"}, "rows": {0: "B"}})
    with torch.no_grad():
        torch.onnx.export(scorer, args, path, input_names=names,
                          output_names=["scores", "rows"],
                          dynamic_axes={n: v for n, v in dyn.items()
                                        if n in names or n in ("scores", "rows")},
                          opset_version=14)
    return names


def _examples(cfg, n, seed=0):
    from fintrec import Sequence
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        m = 3 + 5 * i
        t = np.sort(rng.integers(1_400_000_000, 1_400_000_000 + 30 * 86400, size=m))
        out.append(Sequence(rows=rng.integers(cfg.item_first, cfg.n_items, size=m), times=t,
                            now=int(t[-1]) + 60,
                            types=rng.integers(0, max(cfg.n_event_types, 1), size=m)))
    return out


def check(model, path, k=10, n=20):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    seqs = _examples(model.cfg, n, seed=1)
    f = feeds(model, seqs)
    inputs = {i.name for i in sess.get_inputs()}
    scores, rows = sess.run(None, {k_: v for k_, v in f.items() if k_ in inputs})
    worst, same = 0.0, 0
    with torch.no_grad():
        ref = model.score(seqs).numpy()
    for i, s in enumerate(seqs):
        best = topk(ref[i], k, excluded_rows(model.cfg, s))
        same += int(np.array_equal(best, rows[i]))
        worst = max(worst, float(np.abs(ref[i][best] - scores[i]).max()))
    print("onnx check: %d of %d top-%d lists identical, max score diff %.3g" % (same, n, k, worst))
    return same == n and worst < 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    model, _, _ = load_pgf(args.model)
    export(model, args.out, args.k)
    print("wrote %s" % args.out)
    if args.check and not check(model, args.out, args.k):
        sys.exit(1)


if __name__ == "__main__":
    main()
