#!/usr/bin/env python3
"""fashion_sql_cases.py: the 10,000 Fashion-MNIST test images as PNG files
in a CSV table, for the SOLO quality test through SQL
(test/sql/30_vlm.sql).

    test/gen/fashion_sql_cases.py OUT.csv

Columns: idx, label, class name, reference caption, png (bytea hex).  The images come from
Debian's dataset-fashion-mnist (t10k split), written as 8-bit grey PNGs by
PIL, so answer() decodes them exactly as tools/eval/solo.py reads the raw
pixels.
"""
import csv
import io
import os
import sys

from PIL import Image

from tools.data.fashion import CLASSES, caption_of, load_fashion


def main():
    images, labels = load_fashion("t10k")
    with open(sys.argv[1] + ".tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["idx", "label", "class", "caption", "png"])
        for i, (image, label) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(image, "L").save(buf, format="PNG")
            w.writerow([i, int(label), CLASSES[label], caption_of(label),
                        "\\x" + buf.getvalue().hex()])
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])


if __name__ == "__main__":
    main()
