"""UniFork checkpoints (the released code's `LlavaQwen2ForCausalLM` state
dict names: docs/unifork.md, "Checkpoint names") to pgformer "unifork"
model files, the generation side: the Qwen2 LLM with its generation fork
and norm_gen, the projector with boi / eoi, the residual codebook, the
depth head (rqtransformer) and the pixel decoder.  The vision tower's SigLIP
encoder is not converted (image_codes refuses the file).

  python3 -m tools.export.unifork --checkpoint CKPT --config CONFIG.json --out OUT.pgf
CKPT: a .safetensors file or a torch state dict (.pt, optionally under
"state_dict" or "model").  CONFIG.json: num_attention_heads,
num_key_value_heads, rms_norm_eps, rope_theta, max_position_embeddings,
depth_heads, image_grid, and optionally decoder_groups (32), cfg_scale (4),
gen_template ("{prompt}"), uncond_prompt (""), shared_layers (half).
Widths, layer counts, the code depth and the decoder's levels are read off
the tensors.  The codebook's padding row (the last of codebook_size + 1) is
dropped.  No checkpoint is published; `to_checkpoint` writes a model under
the released names, which is how the converter is tested.
"""
import argparse
import json
import re

import numpy as np
import torch

from tools.export import hf
from tools.models import llama
from tools.models import tokenizer as tr
from tools.models import unifork as uf

TOWER = "model.vision_tower.vision_tower."
RQ = TOWER + "rqtransformer."
VQ = TOWER + "rqvaesiglip."

# our depth-head names -> the released rqtransformer's, per block
_BLOCK = {"ln1": "ln1", "ln2": "ln2", "attn_in_proj": "attn_in_proj", "attn_out_proj": "attn_out_proj",
          "query": "attn.query", "key": "attn.key", "value": "attn.value", "proj": "attn.proj",
          "mlp0": "mlp.0", "mlp2": "mlp.2"}
_QWEN = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
         "w1": "mlp.gate_proj", "w3": "mlp.up_proj", "w2": "mlp.down_proj",
         "ln1": "input_layernorm", "ln2": "post_attention_layernorm"}


def _pairs(model: uf.UniFork):
    """(released name, our parameter) for every tensor the converter maps."""
    out = [("model.embed_tokens.weight", model.llm.tok.weight)]
    if model.llm.head is not None:
        out.append(("lm_head.weight", model.llm.head.weight))
    for group, layers in (("layers", model.llm.layers), ("gen_fork_layers", model.gen_layers)):
        for i, layer in enumerate(layers):
            for ours, theirs in _QWEN.items():
                mod = getattr(layer, ours)
                out.append(("model.%s.%d.%s.weight" % (group, i, theirs), mod.weight))
                if getattr(mod, "bias", None) is not None:
                    out.append(("model.%s.%d.%s.bias" % (group, i, theirs), mod.bias))
    out += [("model.norm.weight", model.llm.lnf.weight), ("model.norm_gen.weight", model.norm_gen.weight),
            ("model.mm_projector.linear1.weight", model.linear1.weight),
            ("model.mm_projector.linear1.bias", model.linear1.bias),
            ("model.mm_projector.linear2.weight", model.linear2.weight),
            ("model.mm_projector.linear2.bias", model.linear2.bias),
            ("model.mm_projector.token_embedding.weight", model.boi_eoi)]
    for name, p in model.head.named_parameters():
        m = re.match(r"blocks\.(\d+)\.(\w+)\.(weight|bias)$", name)
        if m:
            theirs = "head_transformer.blocks.%s.%s.%s" % (m.group(1), _BLOCK[m.group(2)], m.group(3))
        else:
            theirs = {"ln_cls.weight": "classifier_mlp.layer_norm.weight",
                      "ln_cls.bias": "classifier_mlp.layer_norm.bias",
                      "classifier.weight": "classifier_mlp.linear.weight",
                      "classifier.bias": "classifier_mlp.linear.bias"}.get(name, name)
        out.append((RQ + theirs, p))
    for name, p in model.vq.named_parameters():
        out.append((VQ + name, p))
    return out


def to_checkpoint(model: uf.UniFork):
    """{released name: float32 array} of model: the inverse of the converter,
    with the codebook's padding row and pos_emb_d as [1, D, d]."""
    sd = {name: p.detach().float().numpy().copy() for name, p in _pairs(model)}
    sd[RQ + "pos_emb_d"] = sd[RQ + "pos_emb_d"][None]
    cb = model.codebook.detach().float().numpy()
    sd[VQ + "quantizer.codebooks.0.weight"] = np.concatenate([cb, np.zeros((1, cb.shape[1]), np.float32)])
    return sd


def read_checkpoint(path):
    if path.endswith(".safetensors"):
        return hf.read_safetensors(path)
    sd = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k: v.float().numpy() for k, v in sd.items() if hasattr(v, "numpy")}


def _count(sd, pattern):
    found = {int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def config_of(sd, cj):
    """A UniForkConfig from the tensors' shapes and CONFIG.json."""
    emb = sd["model.embed_tokens.weight"]
    vocab, d = emb.shape
    n_und = _count(sd, r"model\.layers\.(\d+)\.")
    n_gen = _count(sd, r"model\.gen_fork_layers\.(\d+)\.")
    heads, kv = cj["num_attention_heads"], cj.get("num_key_value_heads", cj["num_attention_heads"])
    llm = llama.DecoderConfig(
        d_model=d, n_layers=n_und, n_heads=heads, n_kv_heads=kv, head_dim=d // heads,
        d_ff=sd["model.layers.0.mlp.gate_proj.weight"].shape[0], vocab_size=vocab,
        norm_eps=cj.get("rms_norm_eps", 1e-6), rope_theta=cj.get("rope_theta", 1e6),
        qkv_bias="model.layers.0.self_attn.q_proj.bias" in sd, tied="lm_head.weight" not in sd,
        max_positions=cj.get("max_position_embeddings", 0))
    cb = sd[VQ + "quantizer.codebooks.0.weight"]
    width = sd[RQ + "head_transformer.blocks.0.attn_in_proj.weight"].shape[0]
    head = uf.DepthHeadConfig(
        d=d, width=width, heads=cj["depth_heads"],
        d_ff=sd[RQ + "head_transformer.blocks.0.mlp.0.weight"].shape[0],
        blocks=_count(sd, re.escape(RQ) + r"head_transformer\.blocks\.(\d+)\."),
        depth=sd[RQ + "pos_emb_d"].shape[1], codebook_size=cb.shape[0] - 1, code_dim=cb.shape[1])
    levels = _count(sd, re.escape(VQ) + r"decoder\.up\.(\d+)\.")
    widths = [sd[VQ + "decoder.up.%d.block.0.conv1.weight" % lv].shape[0] for lv in range(levels)]
    ch = widths[0]
    decoder = uf.PixelDecoderConfig(
        ch=ch, ch_mult=tuple(w // ch for w in widths),
        num_res_blocks=_count(sd, re.escape(VQ) + r"decoder\.up\.0\.block\.(\d+)\.") - 1,
        z_channels=sd[VQ + "decoder.conv_in.weight"].shape[1], embed_dim=cb.shape[1],
        groups=cj.get("decoder_groups", 32))
    shared = cj.get("shared_layers", n_und - n_gen)
    if n_und - shared != n_gen:
        raise SystemExit("tools.export.unifork: %d layers, %d shared and a fork of %d do not add up"
                         % (n_und, shared, n_gen))
    return uf.UniForkConfig(llm=llm, shared_layers=shared, image_grid=cj["image_grid"], head=head,
                            decoder=decoder, cfg_scale=cj.get("cfg_scale", 4.0),
                            gen_template=cj.get("gen_template", "{prompt}"),
                            uncond_prompt=cj.get("uncond_prompt", ""))


def convert(sd, cj):
    """A UniFork (tools/models/unifork.py) holding the checkpoint's weights."""
    model = uf.UniFork(config_of(sd, cj))
    with torch.no_grad():
        for name, p in _pairs(model):
            if name not in sd:
                raise SystemExit("tools.export.unifork: the checkpoint has no %s" % name)
            value = sd[name]
            if name == RQ + "pos_emb_d":
                value = value.reshape(value.shape[-2:])
            if tuple(value.shape) != tuple(p.shape):
                raise SystemExit("tools.export.unifork: %s is %s, the config implies %s"
                                 % (name, list(value.shape), list(p.shape)))
            p.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))
        model.codebook.copy_(torch.from_numpy(sd[VQ + "quantizer.codebooks.0.weight"][:-1].astype(np.float32)))
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--tokenizer", help="tokenizer.json (default: the byte tokenizer)")
    ap.add_argument("--name", default="unifork")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sd = read_checkpoint(args.checkpoint)
    cj = json.load(open(args.config))
    model = convert(sd, cj)
    tok = (hf.read_tokenizer_json(args.tokenizer) if args.tokenizer
           else tr.TokenizerSpec("bytes", specials=[("<s>", 256), ("</s>", 257)]))
    size = uf.save_pgf(model, args.out, args.name, tokenizer=tok,
                       metadata={"converted_by": "python3 -m tools.export.unifork",
                                 "checkpoint": args.checkpoint})
    print("tools.export.unifork: wrote %s (%.1f MB)" % (args.out, size / 1e6))


if __name__ == "__main__":
    main()
