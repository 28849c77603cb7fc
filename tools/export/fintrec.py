"""FinTRec models (tools/models/fintrec.py) to and from .pgf files.

    write_pgf(model, item_ids, path, name, metadata)   -> bytes written
    load_pgf(path) -> (model, item_ids, metadata)       (float64 with double=True)

Tensor names (docs/fintrec.md, "Tensors"; stack naming of
models/transformer.h).  Head prefix H = fin.ctr (decoder) or fin.cvr
(encoder), stack prefix S = fin.dec or fin.enc:

    fin.emb.prod.weight [n_items, d]       item table (row item_pad, item_unknown, real items)
    fin.emb.evt.weight [n_event_types, d]  fin.emb.chan.weight [n_channels, d]
    fin.emb.time.w [d, 9]                  (time_encoding)
    fin.emb.pos.weight [max_events + 1, d] (learned_positions)
    fin.emb.query [d]  fin.emb.place.weight [n_placements, d]   (query token)
    fin.emb.sfield.weight [n_static, d]  fin.emb.sval.<k>.weight [static_vocab[k], d]
    fin.emb.fm.w [d, d_fm]  fin.emb.fm.b [d]
    fin.alibi.slopes [H]                   (time_bias or index_bias)
    S.l<l>.{ln1,ln2}.{gamma,beta}  S.l<l>.attn.{q,k,v,o}.{weight,bias}
    S.l<l>.ffn.{w1,b1,w2,b2}  S.lnf.{gamma,beta}
    H.wc [d, d]            (score_transform; u = W_c h, [out, in])
    H.w [n_items, d]       (untied scoring table)
    H.bias_prod [n_items]  H.bias_place [n_placements]
    items.ids [n_items - item_first] i64, sorted: external id of row item_first + i
"""
import argparse

import numpy as np
import torch

from tools import pgf
from tools.models.fintrec import Config, FinTRec

ACT_CODES = {"gelu_erf": pgf.pb.GELU_ERF, "gelu_tanh": pgf.pb.GELU_TANH, "relu": pgf.pb.RELU}


def tensors(model):
    """name -> float tensor, in the file's naming."""
    cfg = model.cfg
    out = {"fin.emb.prod.weight": model.item.weight}
    if model.evt is not None:
        out["fin.emb.evt.weight"] = model.evt.weight
    if model.chan is not None:
        out["fin.emb.chan.weight"] = model.chan.weight
    if model.time_w is not None:
        out["fin.emb.time.w"] = model.time_w.weight
    if model.pos is not None:
        out["fin.emb.pos.weight"] = model.pos.weight
    if not cfg.readout_last_event:
        out["fin.emb.query"] = model.query
        out["fin.emb.place.weight"] = model.place.weight
    if cfg.static_vocab:
        out["fin.emb.sfield.weight"] = model.sfield.weight
        for k, table in enumerate(model.sval):
            out["fin.emb.sval.%d.weight" % k] = table.weight
    if cfg.d_fm:
        out["fin.emb.fm.w"] = model.fm.weight
        out["fin.emb.fm.b"] = model.fm.bias
    if cfg.has_bias:
        out["fin.alibi.slopes"] = model.slopes()
    s = cfg.stack_prefix
    for i, blk in enumerate(model.blocks):
        p = "%s.l%d" % (s, i)
        out[p + ".ln1.gamma"], out[p + ".ln1.beta"] = blk.ln1.weight, blk.ln1.bias
        out[p + ".ln2.gamma"], out[p + ".ln2.beta"] = blk.ln2.weight, blk.ln2.bias
        for part in ("q", "k", "v", "o"):
            lin = getattr(blk, part)
            out["%s.attn.%s.weight" % (p, part)] = lin.weight
            out["%s.attn.%s.bias" % (p, part)] = lin.bias
        out[p + ".ffn.w1"], out[p + ".ffn.b1"] = blk.w1.weight, blk.w1.bias
        out[p + ".ffn.w2"], out[p + ".ffn.b2"] = blk.w2.weight, blk.w2.bias
    out[s + ".lnf.gamma"], out[s + ".lnf.beta"] = model.lnf.weight, model.lnf.bias
    h = cfg.head_prefix
    if model.wc is not None:
        out[h + ".wc"] = model.wc.weight
    if model.out_item is not None:
        out[h + ".w"] = model.out_item
    if model.bias_prod is not None:
        out[h + ".bias_prod"] = model.bias_prod
    if model.bias_place is not None:
        out[h + ".bias_place"] = model.bias_place
    return out


def fill_config(c, cfg):
    """Fills a FinTRecConfig message from a Config."""
    b = c.blocks
    b.d_model, b.n_layers, b.n_heads, b.d_ff = cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff
    b.norm = pgf.pb.LAYER_NORM
    b.norm_placement = pgf.pb.PRE_NORM
    b.activation = ACT_CODES[cfg.activation]
    b.norm_eps = cfg.norm_eps
    b.qkv_bias = b.out_proj = b.out_bias = b.ffn_bias = b.final_norm = True
    c.variant = pgf.pb.DECODER if cfg.variant == "decoder" else pgf.pb.ENCODER
    c.n_items = cfg.n_items
    c.n_event_types = cfg.n_event_types
    c.n_channels = cfg.n_channels
    c.n_placements = cfg.n_placements
    c.n_static_tokens = len(cfg.static_vocab)
    c.static_vocab.extend(cfg.static_vocab)
    c.d_fm = cfg.d_fm
    c.max_events = cfg.max_events
    c.time_encoding = cfg.time_encoding
    c.time_bias = cfg.time_bias
    c.time_bias_tau = cfg.time_bias_tau
    c.index_bias = cfg.index_bias
    c.learned_positions = cfg.learned_positions
    c.scale_embeddings = cfg.scale_embeddings
    c.tied_item_table = cfg.tied_item_table
    c.item_pad, c.item_unknown, c.item_first = cfg.item_pad, cfg.item_unknown, cfg.item_first
    c.readout_last_event = cfg.readout_last_event
    c.score_transform = cfg.score_transform
    c.item_bias = cfg.item_bias
    c.placement_bias = cfg.placement_bias


def config_from_header(c):
    act = {v: k for k, v in ACT_CODES.items()}[c.blocks.activation]
    return Config(
        variant="decoder" if c.variant == pgf.pb.DECODER else "encoder",
        n_items=c.n_items, item_pad=c.item_pad, item_unknown=c.item_unknown,
        item_first=c.item_first, n_event_types=c.n_event_types,
        n_channels=c.n_channels, n_placements=c.n_placements,
        static_vocab=tuple(c.static_vocab), d_fm=c.d_fm, max_events=c.max_events,
        d_model=c.blocks.d_model, n_layers=c.blocks.n_layers, n_heads=c.blocks.n_heads,
        d_ff=c.blocks.d_ff, activation=act, norm_eps=c.blocks.norm_eps,
        time_encoding=c.time_encoding, time_bias=c.time_bias,
        time_bias_tau=c.time_bias_tau, index_bias=c.index_bias, learned_positions=c.learned_positions,
        scale_embeddings=c.scale_embeddings, tied_item_table=c.tied_item_table,
        score_transform=c.score_transform, item_bias=c.item_bias,
        placement_bias=c.placement_bias, readout_last_event=c.readout_last_event)


def write_pgf(model, item_ids, path, name, metadata=None, dtype=pgf.F32):
    """Writes model; item_ids (sorted external ids) are rows item_first on.
    dtype applies to the item table(s) only (f32, f16 or bf16)."""
    cfg = model.cfg
    item_ids = np.asarray(item_ids, dtype=np.int64)
    if cfg.item_first + len(item_ids) != cfg.n_items:
        raise ValueError("%d item ids for %d real rows" % (len(item_ids),
                                                          cfg.n_items - cfg.item_first))
    w = pgf.Writer("fintrec", name)
    fill_config(w.header.fintrec, cfg)
    for key, value in sorted((metadata or {}).items()):
        w.header.metadata[key] = str(value)
    tables = {"fin.emb.prod.weight", cfg.head_prefix + ".w"}
    with torch.no_grad():
        for tname, value in tensors(model).items():
            w.add(tname, value.detach().float(), dtype if tname in tables else pgf.F32)
    w.set_items(item_ids, cfg.item_first)
    return w.write(path)


def load_pgf(path, double=False):
    """The torch model stored in a .pgf file, its item ids and metadata."""
    f = pgf.read(path)
    if f.header.architecture != "fintrec":
        raise ValueError("%s holds a %r model, not fintrec" % (path, f.header.architecture))
    cfg = config_from_header(f.header.fintrec)
    model = FinTRec(cfg)
    if double:
        model = model.double()
    with torch.no_grad():
        for tname, param in tensors(model).items():
            value = torch.from_numpy(np.array(f[tname], dtype=np.float64))
            if tname == "fin.alibi.slopes":
                model.log_slopes.copy_(torch.log(value))
            else:
                param.copy_(value.view(param.shape))
    model.eval()
    ids = np.array(f[f.header.items.ids_tensor], dtype=np.int64)
    return model, ids, dict(f.header.metadata)


def main():
    ap = argparse.ArgumentParser(description="Describe a FinTRec .pgf file")
    ap.add_argument("model")
    args = ap.parse_args()
    model, ids, meta = load_pgf(args.model)
    print(model.cfg)
    print("%d item ids, %d parameters" % (len(ids), sum(p.numel() for p in model.parameters())))
    for k, v in sorted(meta.items()):
        print("%s: %s" % (k, v))


if __name__ == "__main__":
    main()
