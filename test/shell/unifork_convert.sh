#!/usr/bin/env bash
# The UniFork converter (tools/export/unifork.py) on a random model saved
# under the released checkpoint's names, as safetensors and as a torch
# state dict: both conversions give the same tensors, equal to the
# model's own; PyTorch on the converted weights draws the original's
# greedy codes; the server loads the file and draws from it; a checkpoint
# missing a tensor is refused naming it.  Prints TAP.  Needs PGHOST/PGUSER
# of a running cluster with pgformer installed.
set -u
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }
py=$(tools/python.sh)
dir=$(mktemp -d)
chmod 755 "$dir"

echo "1..6"
PYTHONPATH=. "$py" - "$dir" <<'PY'
import json
import os
import struct
import sys

import numpy as np
import torch

from tools.export import unifork as conv
from tools.models import llama
from tools.models import unifork as uf

out = sys.argv[1]
c = uf.UniForkConfig(
    llm=llama.DecoderConfig(d_model=32, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=258,
                            norm_eps=1e-6, rope_theta=1e6, qkv_bias=True, tied=True, max_positions=64),
    image_grid=3,
    head=uf.DepthHeadConfig(d=32, width=48, heads=4, d_ff=40, blocks=2, depth=3, codebook_size=20,
                            code_dim=16),
    decoder=uf.PixelDecoderConfig(ch=16, ch_mult=(1, 2), num_res_blocks=1, z_channels=8, embed_dim=16,
                                  groups=8))
model = uf.UniFork(c)
model.llm.init_weights(3, std=0.2)
for module in (model.gen_layers, model.norm_gen, model.head, model.linear1, model.linear2):
    uf.init_random(module, 4)
uf.init_decoder(model.vq, 5)
with torch.no_grad():
    model.codebook.copy_(torch.randn(model.codebook.shape, generator=torch.Generator().manual_seed(6)))
    model.boi_eoi.copy_(torch.randn(2, 32, generator=torch.Generator().manual_seed(7)))
sd = conv.to_checkpoint(model)
torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, os.path.join(out, "ckpt.pt"))
header, blobs, pos = {}, [], 0
for k, v in sd.items():
    b = np.ascontiguousarray(v, "<f4").tobytes()
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [pos, pos + len(b)]}
    blobs.append(b)
    pos += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "ckpt.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump({"num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
           "max_position_embeddings": 64, "depth_heads": 4, "image_grid": 3, "decoder_groups": 8,
           "cfg_scale": 3}, open(os.path.join(out, "config.json"), "w"))
del sd[conv.RQ + "classifier_mlp.linear.bias"]
torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, os.path.join(out, "broken.pt"))
with torch.no_grad():
    model = model.double()
    codes = model.generate_codes([256, 97, 98], [256], cfg_scale=3)
np.save(os.path.join(out, "codes.npy"), codes.numpy())
np.savez(os.path.join(out, "tensors.npz"), **uf.unifork_tensors(model.float()))
PY
ok $? "a random UniFork is saved under the released names (safetensors and .pt)"
for f in safetensors pt; do
	PYTHONPATH=. "$py" -m tools.export.unifork --checkpoint "$dir/ckpt.$f" --config "$dir/config.json" \
		--out "$dir/from_$f.pgf" >/dev/null || failed=1
done
PYTHONPATH=. "$py" - "$dir" <<'PY'
import os
import sys

import numpy as np

from tools import pgf
from tools.models import unifork as uf

out = sys.argv[1]
want = np.load(os.path.join(out, "tensors.npz"))
for f in ("safetensors", "pt"):
    got = pgf.read(os.path.join(out, "from_%s.pgf" % f)).tensors
    assert set(want.files) == set(got), sorted(set(want.files) ^ set(got))
    for k in want.files:
        assert np.array_equal(np.asarray(got[k]).reshape(want[k].shape), want[k]), k
model, _ = uf.load_pgf(os.path.join(out, "from_safetensors.pgf"))
codes = model.double().generate_codes([256, 97, 98], [256], cfg_scale=3)
assert np.array_equal(codes.numpy(), np.load(os.path.join(out, "codes.npy")))
PY
ok $? "both conversions hold exactly the model's tensors, and PyTorch on them draws the original's codes"
! out=$(PYTHONPATH=. "$py" -m tools.export.unifork --checkpoint "$dir/broken.pt" --config "$dir/config.json" \
	--out "$dir/broken.pgf" 2>&1) &&
	grep -q "has no model.vision_tower.vision_tower.rqtransformer.classifier_mlp.linear.bias" <<<"$out"
ok $? "a checkpoint missing a tensor is refused naming it"
chmod 644 "$dir"/*.pgf
q -c "DROP DATABASE IF EXISTS uf_convert" -c "CREATE DATABASE uf_convert" >/dev/null 2>&1
q -d uf_convert -c "CREATE EXTENSION pgformer" -c "SELECT pgformer_load('c', '$dir/from_pt.pgf')" >/dev/null
ok $? "the server loads the converted file"
[ "$(q -d uf_convert -c "SELECT cardinality(image_codes('c', NULL)) IS NULL AND length(generate_image('c', 'ab', 1)) > 0")" = t ]
ok $? "and draws an image from it"
[ "$(q -d uf_convert -c "SELECT arch FROM pgformer_models WHERE name = 'c'")" = unifork ]
ok $? "as architecture unifork"
q -c "DROP DATABASE uf_convert" >/dev/null 2>&1
rm -rf "$dir"
exit $failed
