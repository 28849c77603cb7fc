"""PyTorch references for test/unit/test_pixel_decoder.c: seeded random
pixel decoders (tools/models/unifork.py) with their inputs and outputs,
one .pgf file (architecture "golden").

    python3 test/gen/golden_unifork.py OUT.pgf

Per case <c>: pixdec.<c>.dims I32 [ch, levels, num_res_blocks, z_channels,
embed_dim, out_channels, groups, h, w, ch_mult...], the decoder's tensors
under "pixdec.<c>." as the C side reads them (tools.models.unifork
.decoder_tensors), pixdec.<c>.zq [h * w, embed_dim] (position-major) and
pixdec.<c>.out [(h s) * (w s), 3]: the decoder's output before clamping,
computed in float64 from the float32 weights.
"""
import os
import sys

import numpy as np
import torch

from tools import pgf
from tools.models import unifork as uf

CASES = (
    # the tiny config of docs/unifork.md: 8 x 8 latent -> 64 x 64 pixels
    ("tiny", uf.PixelDecoderConfig(ch=32, ch_mult=(1, 1, 2, 4), num_res_blocks=1,
                                   z_channels=32, embed_dim=64), 8, 8),
    # narrow: 8 groups, no extra residual block, a non-square latent
    ("narrow", uf.PixelDecoderConfig(ch=16, ch_mult=(2, 1), num_res_blocks=0,
                                     z_channels=8, embed_dim=12, groups=8), 3, 5),
)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_unifork.py OUT.pgf")
    torch.set_grad_enabled(False)
    w = pgf.Writer("golden", "unifork references")
    for seed, (name, cfg, h, wd) in enumerate(CASES):
        model = uf.PixelDecoder(cfg)
        uf.init_decoder(model, seed + 1)
        p = "pixdec.%s." % name
        w.add(p + "dims", np.array([cfg.ch, cfg.levels, cfg.num_res_blocks, cfg.z_channels,
                                    cfg.embed_dim, cfg.out_channels, cfg.groups, h, wd]
                                   + list(cfg.ch_mult), np.int32), dtype=pgf.I32)
        for tname, value in uf.decoder_tensors(model, p).items():
            w.add(tname, value)
        zq = torch.randn(1, cfg.embed_dim, h, wd, generator=torch.Generator().manual_seed(seed + 11))
        w.add(p + "zq", np.ascontiguousarray(zq[0].permute(1, 2, 0).reshape(h * wd, -1).numpy()))
        out = model.double()(zq.double())[0]
        w.add(p + "out", np.ascontiguousarray(
            out.permute(1, 2, 0).reshape(-1, cfg.out_channels).numpy().astype(np.float32)))
    out = sys.argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    size = w.write(out)
    print("%s: %d tensors, %d bytes" % (out, len(w.header.tensors), size))


if __name__ == "__main__":
    main()
