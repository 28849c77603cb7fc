#!/usr/bin/env bash
# The image-generation demo: the committed UniFork (demo/models/unifork_fashion.pgf)
# draws eight images for each of the ten prompts "a photo of a <noun>"
# through generate_image, writes them as PNG files into OUT, prints their
# paths, and lays them out in one contact sheet (a row per prompt) with the
# mean pixel distance between the seeds of each prompt.  Run by demo/run.sh
# against its cluster (PGHOST, database demo).
#
#   demo/unifork.sh OUT
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?output folder}
mkdir -p "$out"
model=$(cd "$out" && pwd)/unifork_fashion.pgf
cp demo/models/unifork_fashion.pgf "$model"
chmod 755 "$out"
chmod 644 "$model"
psql -qAtX -v ON_ERROR_STOP=1 -d demo -c "SELECT pgformer_load('artist', '$model')" >/dev/null
nouns=("T-shirt" "pair of trousers" "pullover" "dress" "coat" "sandal" "shirt" "sneaker" "bag" "ankle boot")
echo "== UniFork: generate_image('artist', 'a photo of a <noun>', seed, temperature => 0.7, top_p => 0.9) for ten prompts, eight seeds"
for noun in "${nouns[@]}"; do
	file=${noun// /_}
	for seed in 1 2 3 4 5 6 7 8; do
		psql -qAtX -v ON_ERROR_STOP=1 -d demo \
			-c "SELECT encode(generate_image('artist', 'a photo of a $noun', $seed, temperature => 0.7, top_p => 0.9), 'base64')" |
			base64 -d >"$out/${file}_$seed.png"
	done
	echo "   $out/${file}_1.png .. ${file}_8.png"
done
"$(tools/python.sh)" - "$out" "${nouns[@]}" <<'PY'
import itertools
import os
import sys

import numpy as np
from PIL import Image

out, nouns = sys.argv[1], sys.argv[2:]
rows = []
for noun in nouns:
    imgs = [np.asarray(Image.open(os.path.join(out, "%s_%d.png" % (noun.replace(" ", "_"), s))).convert("RGB"),
                       dtype=np.float64) for s in range(1, 9)]
    dist = np.mean([np.abs(a - b).mean() for a, b in itertools.combinations(imgs, 2)])
    print("   %-17s mean pixel distance between seeds %.1f (of 255)" % (noun, dist))
    rows.append(np.concatenate([i.astype(np.uint8) for i in imgs], 1))
sheet = Image.fromarray(np.concatenate(rows, 0)).resize((8 * 32 * 3, 10 * 32 * 3), Image.NEAREST)
path = os.path.join(out, "contact_sheet.png")
sheet.save(path)
print("== contact sheet (a row per prompt, 3x): %s" % path)
PY
