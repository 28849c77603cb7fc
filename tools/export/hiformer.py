"""Writes a Hiformer (tools/models/hiformer.py) and its feature
specs to a .pgf model file.

The header carries the HiformerConfig, one FeatureSpec per input feature in
the order the model reads them (categorical and multi-hot features give the
token order; dense features give the columns of the dense block), and
metadata (training facts, and the SQL binding queries under
"sql.user_features", "sql.item_features", "sql.context_features" when
given).  Tensor names and layouts: models/hiformer.h.

    python3 -m tools.export.hiformer CHECKPOINT.pt OUT.pgf
(a checkpoint written by tools/train/hiformer.py).
"""
import argparse

import torch

from tools import pgf
from tools.models import hiformer as hf

_KIND = {hf.CATEGORICAL: pgf.pb.CATEGORICAL, hf.DENSE: pgf.pb.DENSE,
         hf.MULTI_HOT: pgf.pb.MULTI_HOT}
_ACT = {"gelu": pgf.pb.GELU_ERF, "gelu_tanh": pgf.pb.GELU_TANH, "relu": pgf.pb.RELU}


def export(model, features, path, name="hiformer", metadata=None):
    """Writes model (eval weights) and features to path; returns bytes written."""
    c = model.c
    w = pgf.Writer("hiformer", name)
    hc = w.header.hiformer
    hc.n_categorical = c.n_categorical
    hc.n_dense = c.n_dense
    hc.n_dense_tokens = c.n_dense_tokens
    hc.n_tasks = c.n_tasks
    hc.d_model = c.d_model
    hc.n_heads = c.n_heads
    hc.head_dim = c.head_dim
    hc.d_ff = c.d_ff
    hc.n_layers = c.n_layers
    hc.rank_k = c.rank_k
    hc.rank_v = c.rank_v
    hc.norm_placement = pgf.pb.PRE_NORM if c.prenorm else pgf.pb.POST_NORM
    hc.activation = _ACT[c.activation]
    hc.norm_eps = c.norm_eps
    hc.tower_sizes.extend(c.tower_sizes)
    hc.task_names.extend(c.task_names)
    cats = [f for f in features if f.kind != hf.DENSE]
    if [f.vocab_size for f in cats] != list(c.vocab_sizes):
        raise ValueError("feature vocabularies disagree with the model config")
    if sum(f.kind == hf.DENSE for f in features) != c.n_dense:
        raise ValueError("dense feature count disagrees with the model config")
    for f in features:
        if f.group not in hf.GROUPS:
            raise ValueError("feature %s: group %r" % (f.name, f.group))
        if f.kind == hf.DENSE and not (f.std > 0 and f.clip >= 0):
            raise ValueError("feature %s: std must be positive, clip not negative" % f.name)
        w.header.features.add(name=f.name, kind=_KIND[f.kind], vocab_size=f.vocab_size,
                              default_value=f.default, mean=f.mean, std=f.std,
                              log1p=f.log1p, categories=list(f.categories),
                              group=f.group, clip=f.clip)
    for k, v in (metadata or {}).items():
        w.header.metadata[k] = str(v)
    for tname, array in sorted(hf.state_to_tensors(model).items()):
        w.add(tname, array)
    return w.write(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--name", default="hiformer")
    args = ap.parse_args()
    ck = torch.load(args.checkpoint)
    model = hf.Hiformer(hf.HiformerConfig(**ck["config"]))
    model.load_state_dict(ck["state"])
    model.eval()
    features = [hf.Feature(**f) for f in ck["features"]]
    n = export(model, features, args.out, args.name, ck.get("metadata"))
    print("export_hiformer: wrote %s (%d bytes)" % (args.out, n))


if __name__ == "__main__":
    main()
