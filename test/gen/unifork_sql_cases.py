"""PyTorch's image codes of Fashion-MNIST test images for the SQL test of
image_codes (test/sql/41_unifork_quality.sql): each image as the C side
reads it (PIL's RGB conversion and bilinear resize to the model's image
side, (v / 255 - 0.5) / 0.5 in float32, channel-major patches), through
the model's image encoder in float64 and the residual quantiser.

    test/gen/unifork_sql_cases.py MODEL.pgf FASHION.csv N OUT.csv

FASHION.csv is test/gen/fashion_sql_cases.py's; OUT.csv has idx and codes
(an SQL int[] literal) for its first N images.
"""
import csv
import io
import sys

import numpy as np
import torch
from PIL import Image

from tools import pgf
from tools.models import llama
from tools.models import unifork as uf


def main():
    model_path, fashion_csv, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    m = pgf.read(model_path)
    c = m.header.unifork
    enc = uf.encoder_from_pgf(m).double()
    codebook = torch.from_numpy(np.array(m["uf.rq.codebook"], np.float64))
    csv.field_size_limit(1 << 24)
    with open(fashion_csv) as f, open(out, "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["idx", "codes"])
        for row in csv.DictReader(f):
            if int(row["idx"]) >= n:
                break
            img = Image.open(io.BytesIO(bytes.fromhex(row["png"][2:]))).convert("RGB")
            img = img.resize((c.image_side, c.image_side), Image.BILINEAR)
            x = np.asarray(img, np.float32) / np.float32(255)
            x = (torch.from_numpy(x).permute(2, 0, 1) - 0.5) / 0.5
            patches, _, _ = llama.patchify(x, c.encoder_patch)
            with torch.no_grad():
                z = enc(patches.double()[None])[0]
            codes, _ = uf.rq_quantize(z, codebook, c.rq_depth)
            w.writerow([row["idx"], "{%s}" % ",".join(str(int(v)) for v in codes.reshape(-1))])


if __name__ == "__main__":
    main()
