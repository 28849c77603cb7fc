#!/usr/bin/env bash
# generate_image's pixels are PyTorch's: the random tiny UniFork of the
# unit test draws greedily (top_k 1) through SQL, the PNG is decoded with
# PIL (an independent decoder) and compared with the pixels the PyTorch
# reference decodes from its own greedy codes (test/gen/golden_unifork.py,
# clamped and rounded as models/pixel_decoder.c does; at most one level
# apart where float32 rounding meets a half).  Prints TAP.  Needs
# PGHOST/PGUSER of a running cluster with pgformer installed, and FIXTURES.
set -u
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

echo "1..3"
q -c "DROP DATABASE IF EXISTS uf_image" -c "CREATE DATABASE uf_image" >/dev/null 2>&1
q -d uf_image -c "CREATE EXTENSION pgformer" -c "SELECT pgformer_load('m', '$FIXTURES/unifork_tiny.pgf')" >/dev/null
ok $? "the tiny UniFork loads"
png=$(mktemp)
q -d uf_image -c "SELECT encode(generate_image('m', 'a photo of a bag', 1, 3, 1, 1), 'base64')" |
	base64 -d >"$png"
ok $? "generate_image draws greedily through SQL"
PYTHONPATH=. "$(tools/python.sh)" - "$png" "$FIXTURES/unifork_ref.pgf" <<'PY'
import sys

import numpy as np
from PIL import Image

from tools import pgf

got = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.int16)
ref = pgf.read(sys.argv[2]).tensors["model.pixels"].astype(np.float64)
side = got.shape[0]
want = np.clip(np.rint((ref + 1) * 127.5), 0, 255).reshape(side, side, 3)
diff = np.abs(got - want)
print("# %dx%d pixels, largest difference %d, %d values differ" % (side, side, diff.max(), (diff > 0).sum()))
sys.exit(0 if got.shape == want.shape and diff.max() <= 1 and (diff > 0).mean() < 0.02 else 1)
PY
ok $? "the PNG holds PyTorch's pixels for the same prompt"
rm -f "$png"
q -c "DROP DATABASE uf_image" >/dev/null 2>&1
exit $failed
