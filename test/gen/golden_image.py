#!/usr/bin/env python3
"""golden_image.py: reference data for the image codec (models/image_codec.c, image_resize.c and image.c).

The references are independent of the C code: PIL (Debian python3-pil,
which decodes PNG with its own zlib-based decoder and JPEG through the same
libjpeg-turbo) for decoding and resizing, and torch for normalisation and
the unfold-based patchify that SOLO's preprocessing uses (docs/solo.md, "Images").
torchvision's Resize on a PIL image is PIL's Image.resize((W, H),
Image.BILINEAR); torchvision itself is not needed to reproduce it.

  golden_image.py OUT_DIR
      Writes test inputs (PNG variants from a small PNG writer of our own,
      JPEG variants saved by PIL, the committed photos), the expected
      pixels / floats and OUT_DIR/manifest.txt, which test/unit/test_image.c
      reads.  Run by `make unit` (test/unit/golden/image/, git-ignored).

  golden_image.py --fixtures DIR
      Writes the broken-file corpus (deterministic) and DIR/EXPECT, the
      status and message each file must produce.  Committed under
      test/fixtures/images/broken/.

Manifest lines (paths relative to OUT_DIR):
  decode  NAME INPUT EXPECT_RGB W H TOLERANCE
  resize  NAME INPUT_RAW W H CHANNELS OUT_W OUT_H EXPECT_RAW
  patches NAME INPUT P MAX_SIDE CHANNELS MEAN0 MEAN1 MEAN2 STD0 STD1 STD2 ROWS COLS EXPECT_F32
  target  W H P MAX_SIDE OUT_W OUT_H
"""
import io
import math
import os
import random
import struct
import sys
import warnings
import zlib

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = os.path.join(REPO, "test", "fixtures", "images", "photos")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
warnings.filterwarnings("ignore", module="PIL")
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---- a small PNG writer: every colour type, bit depth, filter, Adam7 ----------

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_chunk(tag, data):
    return (struct.pack(">I", len(data)) + tag + data +
            struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))


def pack_row(row, bit_depth):
    """One scanline of samples (w, channels) as bytes."""
    flat = row.reshape(-1).astype(np.uint32)
    if bit_depth == 16:
        return flat.astype(">u2").tobytes()
    if bit_depth == 8:
        return flat.astype(np.uint8).tobytes()
    per_byte = 8 // bit_depth
    pad = (-len(flat)) % per_byte
    flat = np.concatenate([flat, np.zeros(pad, np.uint32)]).reshape(-1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1) * bit_depth
    return (flat << shifts).sum(axis=1).astype(np.uint8).tobytes()


def filter_rows(rows, bpp, first_filter):
    """Filters scanlines, cycling through all five PNG filter types."""
    out = bytearray()
    prev = np.zeros(len(rows[0]), np.int32) if rows else None
    for i, row in enumerate(rows):
        ftype = (first_filter + i) % 5
        r = np.frombuffer(row, np.uint8).astype(np.int32)
        a = np.concatenate([np.zeros(bpp, np.int32), r[:-bpp]])[:len(r)]
        b = prev
        c = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])[:len(r)]
        if ftype == 0:
            f = r
        elif ftype == 1:
            f = r - a
        elif ftype == 2:
            f = r - b
        elif ftype == 3:
            f = r - ((a + b) >> 1)
        else:
            p = a + b - c
            pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
            pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
            f = r - pred
        out.append(ftype)
        out += (f & 0xFF).astype(np.uint8).tobytes()
        prev = r
    return bytes(out)


def encode_png(samples, color_type, bit_depth, interlace=False, plte=None, trns=None):
    """samples: (h, w, channels) integers in range for bit_depth."""
    h, w, ch = samples.shape
    assert ch == CHANNELS[color_type]
    bpp = max(1, ch * bit_depth // 8)
    data = b""
    if not interlace:
        data = filter_rows([pack_row(samples[y], bit_depth) for y in range(h)], bpp, 0)
    else:
        for n, (xs, ys, xstep, ystep) in enumerate(ADAM7):
            sub = samples[ys::ystep, xs::xstep]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            data += filter_rows([pack_row(sub[y], bit_depth) for y in range(sub.shape[0])],
                                bpp, n)
    z = zlib.compress(data, 9)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0,
                                          1 if interlace else 0))
    if plte is not None:
        out += png_chunk(b"PLTE", np.asarray(plte, np.uint8).tobytes())
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    # Two IDAT chunks where there is data enough: readers must join them.
    half = len(z) // 2 if len(z) > 64 else len(z)
    out += png_chunk(b"IDAT", z[:half])
    if half < len(z):
        out += png_chunk(b"IDAT", z[half:])
    out += png_chunk(b"IEND", b"")
    return out


# ---- the reference pipeline -----------------------------------------------------

def pil_rgb(data):
    """SOLO's decode: Image.open(...).convert("RGB")."""
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def solo_target(w, h, p, max_side):
    """The size rule of docs/solo.md ("Images"), written from the formula (floats as in Python)."""
    lng, shrt = max(w, h), min(w, h)
    new_long = min(math.ceil(lng / p) * p, max_side)
    new_short = math.ceil(math.floor(new_long * shrt / lng) / p) * p
    new_short = max(new_short, p)
    return (new_long, new_short) if w >= h else (new_short, new_long)


def pil_resize(arr, ow, oh):
    """torchvision Resize((oh, ow)) on a PIL image."""
    mode = "L" if arr.ndim == 2 else "RGB"
    return np.array(Image.fromarray(arr, mode).resize((ow, oh), Image.BILINEAR))


def torch_patches(arr, p, mean, std):
    """ToTensor + Normalize + unfold, flattened channel-major per patch."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    t = t[:, :, None] if t.dim() == 2 else t
    x = t.permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    c = x.shape[0]
    m = torch.as_tensor(mean[:c], dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std[:c], dtype=torch.float32)[:, None, None]
    x = x.sub(m).div(s)
    u = x.unfold(1, p, p).unfold(2, p, p)  # [C, nH, nW, P, P]
    nh, nw = u.shape[1], u.shape[2]
    return u.permute(1, 2, 0, 3, 4).reshape(nh * nw, c * p * p).numpy(), nh, nw


def preprocess(data, p, max_side, grey, mean, std):
    img = Image.open(io.BytesIO(data)).convert("L" if grey else "RGB")
    ow, oh = solo_target(img.width, img.height, p, max_side)
    if (ow, oh) != img.size:
        img = img.resize((ow, oh), Image.BILINEAR)
    return torch_patches(np.array(img), p, mean, std)


def f32(v):
    return "%.9g" % float(np.float32(v))


# ---- test inputs ---------------------------------------------------------------

def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def jpeg_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png_bytes(img, **kw):
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


def png_variants(rng):
    """(name, bytes, expected RGB) for every PNG kind; expected from numpy,
    checked against PIL below."""
    cat = np.array(Image.open(io.BytesIO(photo("chelsea.png"))).convert("RGB"))
    rgb = cat[70:131, 180:277].copy()  # 97 x 61, the cat's face
    grey = np.array(Image.fromarray(rgb).convert("L"))
    h, w = grey.shape
    alpha = ((np.arange(w)[None, :] * 7 + np.arange(h)[:, None] * 13) % 256).astype(np.uint8)
    alpha[::5, ::3] = 0  # colour kept under fully transparent pixels
    wide16 = rng.randint(0, 65536, size=(h, w, 3)).astype(np.uint16)
    wide16[..., :] = (rgb.astype(np.uint16) << 8) | (wide16 & 0xFF)
    pal_img = Image.fromarray(rgb).quantize(colors=200)
    pal_idx = np.array(pal_img)
    plte = np.array(pal_img.getpalette()[:3 * 200], np.uint8).reshape(-1, 3)
    out = []

    def add(name, data, expect):
        out.append((name, data, expect))

    def g3(g):
        return np.repeat(g[:, :, None], 3, axis=2)

    for interlace in (False, True):
        sfx = "_interlaced" if interlace else ""
        add("png_rgb8" + sfx, encode_png(rgb[:, :, :], 2, 8, interlace), rgb)
        add("png_grey8" + sfx, encode_png(grey[:, :, None], 0, 8, interlace), g3(grey))
        for bd in (1, 2, 4):
            q = (grey >> (8 - bd)).astype(np.uint8)
            scale = 255 // ((1 << bd) - 1)
            add("png_grey%d%s" % (bd, sfx), encode_png(q[:, :, None], 0, bd, interlace),
                g3(q * scale))
        add("png_grey_alpha8" + sfx,
            encode_png(np.stack([grey, alpha], axis=2), 4, 8, interlace), g3(grey))
        add("png_rgba8" + sfx,
            encode_png(np.concatenate([rgb, alpha[:, :, None]], axis=2), 6, 8, interlace), rgb)
        add("png_rgb16" + sfx, encode_png(wide16, 2, 16, interlace), (wide16 >> 8).astype(np.uint8))
        add("png_rgba16" + sfx,
            encode_png(np.concatenate([wide16, (alpha.astype(np.uint16) * 257)[:, :, None]],
                                      axis=2), 6, 16, interlace),
            (wide16 >> 8).astype(np.uint8))
        g16 = wide16[:, :, 1]
        add("png_grey_alpha16" + sfx,
            encode_png(np.stack([g16, alpha.astype(np.uint16) * 257], axis=2), 4, 16, interlace),
            g3((g16 >> 8).astype(np.uint8)))
        # 16-bit grey: the high byte (PIL 9 would clip to 255; see image.h).
        add("png_grey16" + sfx, encode_png(g16[:, :, None], 0, 16, interlace),
            g3((g16 >> 8).astype(np.uint8)))
        add("png_palette8" + sfx, encode_png(pal_idx[:, :, None], 3, 8, interlace, plte=plte),
            plte[pal_idx])
        trns = bytes((i * 37) % 256 for i in range(120))
        add("png_palette8_trns" + sfx,
            encode_png(pal_idx[:, :, None], 3, 8, interlace, plte=plte, trns=trns), plte[pal_idx])
        for bd in (1, 2, 4):
            n = 1 << bd
            idx = (pal_idx % n).astype(np.uint8)
            small = plte[:n]
            add("png_palette%d%s" % (bd, sfx),
                encode_png(idx[:, :, None], 3, bd, interlace, plte=small), small[idx])
        add("png_grey8_trns" + sfx,
            encode_png(grey[:, :, None], 0, 8, interlace, trns=struct.pack(">H", int(grey[0, 0]))),
            g3(grey))
        add("png_rgb8_trns" + sfx,
            encode_png(rgb, 2, 8, interlace, trns=struct.pack(">HHH", *map(int, rgb[0, 0]))), rgb)
    # Tiny and thin images (interlaced ones have empty Adam7 passes).
    for (tw, th) in [(1, 1), (3, 2), (1, 9), (9, 1), (5, 5)]:
        sub = rgb[:th, :tw]
        add("png_rgb8_%dx%d" % (tw, th), encode_png(sub, 2, 8), sub)
        add("png_rgb8_%dx%d_interlaced" % (tw, th), encode_png(sub, 2, 8, True), sub)
    add("png_grey1_1x1", encode_png(np.ones((1, 1, 1), np.uint8), 0, 1),
        np.full((1, 1, 3), 255, np.uint8))
    # Files written by PIL's own encoder.
    add("png_pil_rgb", png_bytes(Image.fromarray(rgb)), rgb)
    add("png_pil_rgba", png_bytes(Image.fromarray(np.concatenate([rgb, alpha[:, :, None]], 2))),
        rgb)
    add("png_pil_la", png_bytes(Image.fromarray(np.stack([grey, alpha], 2), "LA")), g3(grey))
    add("png_pil_palette", png_bytes(pal_img), plte[pal_idx])
    add("png_pil_1bit", png_bytes(Image.fromarray(grey).convert("1")),
        g3(np.array(Image.fromarray(grey).convert("1")).astype(np.uint8) * 255))
    return out


def jpeg_variants():
    face = Image.open(io.BytesIO(photo("astronaut_face.png"))).convert("RGB")
    odd = face.crop((37, 41, 134, 102))  # 97 x 61: partial MCUs at both edges
    out = [("photo_rocket", photo("rocket.jpg"))]
    for name, img in (("face", face), ("odd", odd)):
        out += [
            ("jpeg_%s_420" % name, jpeg_bytes(img, quality=90)),
            ("jpeg_%s_422" % name, jpeg_bytes(img, quality=85, subsampling=1)),
            ("jpeg_%s_444" % name, jpeg_bytes(img, quality=95, subsampling=0)),
            ("jpeg_%s_progressive" % name, jpeg_bytes(img, quality=90, progressive=True)),
            ("jpeg_%s_optimized" % name, jpeg_bytes(img, quality=75, optimize=True)),
            ("jpeg_%s_grey" % name, jpeg_bytes(img.convert("L"), quality=90)),
            ("jpeg_%s_grey_progressive" % name,
             jpeg_bytes(img.convert("L"), quality=90, progressive=True)),
            ("jpeg_%s_cmyk" % name, jpeg_bytes(img.convert("CMYK"), quality=90)),
        ]
    out.append(("jpeg_1x1", jpeg_bytes(face.crop((100, 100, 101, 101)), quality=90)))
    out.append(("jpeg_1x1_grey", jpeg_bytes(face.crop((100, 100, 101, 101)).convert("L"))))
    return out


def synthetic(w, h, seed):
    """A smooth picture with edges and noise: hard for a resampler."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * ((x // 40 + y // 40) % 2)
    b = 255 * (x / max(w - 1, 1))
    img = np.stack([r, g, b], axis=2) + rng.normal(0, 12, size=(h, w, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---- goldens ---------------------------------------------------------------------

def write_goldens(out_dir):
    os.makedirs(os.path.join(out_dir, "in"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "expect"), exist_ok=True)
    rng = np.random.RandomState(7)
    lines = ["# written by test/gen/golden_image.py; PIL %s, torch %s" %
             (Image.__version__, torch.__version__)]
    inputs = {}

    def save(rel, data):
        with open(os.path.join(out_dir, rel), "wb") as f:
            f.write(data)
        return rel

    # Decoding: PIL's decode is the reference.
    decode_cases = []
    for name, data, expect in png_variants(rng):
        ref = pil_rgb(data)
        if name.startswith("png_grey16"):
            clipped = np.minimum(np.array(Image.open(io.BytesIO(data))).astype(np.int64), 255)
            assert np.array_equal(ref[:, :, 0], clipped), name  # PIL's clipping, documented
            ref = expect
        assert ref.shape == expect.shape and np.array_equal(ref, expect), \
            "the PNG writer and PIL disagree on " + name
        decode_cases.append((name, data, ref, 0, ".png"))
    for name, data in jpeg_variants():
        decode_cases.append((name, data, pil_rgb(data), 1, ".jpg"))
    for pname in ("chelsea.png", "astronaut_face.png", "coffee_cup.png"):
        data = photo(pname)
        decode_cases.append(("photo_" + pname.split(".")[0], data, pil_rgb(data), 0, ".png"))
    big = synthetic(1500, 1100, 3)
    decode_cases.append(("synthetic_1500x1100", png_bytes(Image.fromarray(big)), big, 0, ".png"))
    for name, data, ref, tol, ext in decode_cases:
        inp = save("in/%s%s" % (name, ext), data)
        inputs[name] = (inp, data)
        exp = save("expect/%s.rgb" % name, np.ascontiguousarray(ref, np.uint8).tobytes())
        lines.append("decode %s %s %s %d %d %d" % (name, inp, exp, ref.shape[1], ref.shape[0], tol))

    # Resizing: PIL's Image.resize(BILINEAR) is the reference.
    def add_resize(name, arr, ow, oh):
        ch = 1 if arr.ndim == 2 else 3
        inp = save("in/%s.raw" % name, np.ascontiguousarray(arr).tobytes())
        exp = save("expect/%s.raw" % name, pil_resize(arr, ow, oh).tobytes())
        lines.append("resize %s %s %d %d %d %d %d %s" %
                     (name, inp, arr.shape[1], arr.shape[0], ch, ow, oh, exp))

    photos = {n: pil_rgb(photo(n + ext)) for n, ext in
              (("chelsea", ".png"), ("rocket", ".jpg"), ("astronaut_face", ".png"),
               ("coffee_cup", ".png"))}
    for n, arr in photos.items():
        for p, m in ((32, 1024), (16, 128), (8, 64), (14, 448)):
            ow, oh = solo_target(arr.shape[1], arr.shape[0], p, m)
            add_resize("resize_%s_p%d_m%d" % (n, p, m), arr, ow, oh)
    add_resize("resize_synthetic_solo", big, *solo_target(1500, 1100, 32, 1024))
    wide = synthetic(3000, 200, 4)
    add_resize("resize_wide_solo", wide, *solo_target(3000, 200, 32, 1024))
    add_resize("resize_synthetic_quarter", big, 375, 275)
    add_resize("resize_synthetic_up", synthetic(45, 30, 5), 480, 320)
    grey = np.array(Image.fromarray(photos["coffee_cup"]).convert("L"))
    add_resize("resize_grey_down", grey, 128, 96)
    add_resize("resize_grey_up", grey[:50, :70], 224, 160)
    add_resize("resize_only_horizontal", photos["chelsea"], 200, 300)
    add_resize("resize_only_vertical", photos["chelsea"], 451, 77)
    add_resize("resize_same", photos["chelsea"][:64, :64], 64, 64)
    for i, (w, h, ow, oh) in enumerate([(37, 23, 5, 71), (1, 1, 32, 32), (7, 3, 1, 1),
                                        (64, 1, 3, 5), (2, 300, 40, 7), (1000, 3, 17, 1),
                                        (33, 65, 32, 64), (96, 96, 95, 97), (5, 5, 1000, 3)]):
        noise = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        add_resize("resize_noise_%d_%dx%d_to_%dx%d" % (i, w, h, ow, oh), noise, ow, oh)

    # The whole pipeline: bytes -> float patches.
    def add_patches(name, input_name, p, m, grey, mean, std):
        inp, data = inputs[input_name]
        floats, nh, nw = preprocess(data, p, m, grey, mean, std)
        exp = save("expect/%s.f32" % name, floats.astype(np.float32).tobytes())
        mean3 = (list(mean) * 3)[:3]
        std3 = (list(std) * 3)[:3]
        lines.append("patches %s %s %d %d %d %s %s %d %d %s" %
                     (name, inp, p, m, 1 if grey else 3, " ".join(f32(v) for v in mean3),
                      " ".join(f32(v) for v in std3), nh, nw, exp))

    add_patches("patches_rocket_solo", "photo_rocket", 32, 1024, False, IMAGENET_MEAN, IMAGENET_STD)
    add_patches("patches_chelsea_solo", "photo_chelsea", 32, 1024, False, IMAGENET_MEAN,
                IMAGENET_STD)
    add_patches("patches_synthetic_solo", "synthetic_1500x1100", 32, 1024, False, IMAGENET_MEAN,
                IMAGENET_STD)
    add_patches("patches_face_tiny", "photo_astronaut_face", 16, 128, False, IMAGENET_MEAN,
                IMAGENET_STD)
    add_patches("patches_coffee_grey", "photo_coffee_cup", 16, 64, True, (0.5,), (0.25,))
    add_patches("patches_cmyk", "jpeg_odd_cmyk", 8, 64, False, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    add_patches("patches_palette_interlaced", "png_palette8_trns_interlaced", 16, 64, False,
                IMAGENET_MEAN, IMAGENET_STD)
    add_patches("patches_1x1", "png_rgb8_1x1", 32, 1024, False, IMAGENET_MEAN, IMAGENET_STD)
    add_patches("patches_thin", "png_rgb8_9x1_interlaced", 4, 32, False, IMAGENET_MEAN,
                IMAGENET_STD)

    # The resize rule on many sizes.
    sizes = [(1, 1, 32, 1024), (32, 32, 32, 1024), (33, 32, 32, 1024), (1024, 1024, 32, 1024),
             (1025, 1, 32, 1024), (1, 5000, 32, 1024), (4000, 3000, 32, 1024),
             (640, 427, 32, 1024), (451, 300, 32, 1024), (300, 451, 32, 1024),
             (2048, 1536, 32, 1024), (100000, 99999, 32, 1024), (7, 5, 16, 128),
             (129, 64, 16, 128), (1000000, 1, 32, 1024), (65500, 65500, 14, 448)]
    for _ in range(300):
        p = rng.choice([1, 2, 8, 14, 16, 32])
        m = p * rng.randint(1, 64)
        sizes.append((int(rng.randint(1, 5000)), int(rng.randint(1, 5000)), int(p), int(m)))
    for w, h, p, m in sizes:
        ow, oh = solo_target(w, h, p, m)
        lines.append("target %d %d %d %d %d %d" % (w, h, p, m, ow, oh))

    with open(os.path.join(out_dir, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("golden_image.py: %d cases in %s" % (len(lines) - 1, out_dir))


# ---- the broken-file corpus -------------------------------------------------------

def write_fixtures(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    face = Image.open(io.BytesIO(photo("astronaut_face.png"))).convert("RGB").crop((60, 60, 92, 84))
    arr = np.array(face)
    png = encode_png(arr, 2, 8)
    jpg = jpeg_bytes(face, quality=90)
    prog = jpeg_bytes(face, quality=90, progressive=True)
    entries = []

    def add(name, data, status, message):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        entries.append("%s %s %s" % (name, status, message))

    def ihdr_png(w, h, bit_depth=8, color_type=2, rows=None):
        out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth,
                                                                    color_type, 0, 0, 0))
        out += png_chunk(b"IDAT", zlib.compress(rows if rows is not None else b"\0" * 64))
        return out + png_chunk(b"IEND", b"")

    def jpeg_sof(data):
        """Offset of the SOF marker's payload (after FFCx + length)."""
        i = 2
        while i < len(data):
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                return i + 4
            i += 2 + length
        raise ValueError("no SOF")

    def jpeg_sos_end(data):
        i = 2
        while i < len(data):
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker == 0xDA:
                return i + 2 + length
            i += 2 + length
        raise ValueError("no SOS")

    def patched(data, offset, new):
        return data[:offset] + new + data[offset + len(new):]

    idat = png.index(b"IDAT") - 4
    iend = png.index(b"IEND") - 4
    sof = jpeg_sof(jpg)
    sos = jpeg_sos_end(jpg)

    add("not_an_image.txt", b"hello, this is text and not a picture\n", "format",
        "not a PNG or JPEG image")
    add("empty.bin", b"", "format", "not a PNG or JPEG image (no bytes)")
    gif = io.BytesIO()
    face.save(gif, "GIF")
    add("tiny.gif", gif.getvalue(), "format", "(it looks like GIF)")
    add("header.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\0" * 24, "format",
        "(it looks like WebP)")
    add("png_signature_only.png", png[:8], "corrupt", "truncated inside its header")
    add("png_cut_in_ihdr.png", png[:20], "corrupt", "truncated inside its header")
    add("png_cut_after_ihdr.png", png[:idat], "corrupt", "truncated")
    add("png_cut_in_idat.png", png[:idat + (iend - idat) // 2], "corrupt", "truncated")
    add("png_cut_before_idat_crc.png", png[:iend - 2], "corrupt", "truncated")
    add("png_no_iend.png", png[:iend], "ok", "-")
    add("png_bad_signature.png", b"\x89PNG\r\n\x1a\x0b" + png[8:], "format",
        "damaged PNG signature")
    add("png_bad_ihdr_crc.png", patched(png, 29, b"\0\0\0\0"), "corrupt", "CRC")
    add("png_bad_idat_crc.png", patched(png, iend - 4, b"\0\0\0\0"), "corrupt", "CRC")
    garbage = bytes(random.Random(1).randrange(256) for _ in range(300))
    add("png_bad_zlib.png", png[:8] + png[8:33] + png_chunk(b"IDAT", garbage) +
        png_chunk(b"IEND", b""), "corrupt", "invalid PNG image")
    add("png_short_zlib.png", png[:33] + png_chunk(b"IDAT", zlib.compress(b"\0" * 50)) +
        png_chunk(b"IEND", b""), "corrupt", "invalid PNG image")
    add("png_no_idat.png", png[:33] + png_chunk(b"IEND", b""), "corrupt", "invalid PNG image")
    add("png_first_chunk_not_ihdr.png", png[:8] + png_chunk(b"tEXt", b"a\0b") + png[8:],
        "corrupt", "not a valid IHDR")
    add("png_bad_color_type.png", ihdr_png(4, 4, 8, 5), "corrupt", "invalid PNG image")
    add("png_bad_bit_depth.png", ihdr_png(4, 4, 4, 2), "corrupt", "invalid PNG image")
    add("png_zero_width.png", ihdr_png(0, 10), "empty", "zero width or height (0 x 10)")
    add("png_zero_height.png", ihdr_png(10, 0), "empty", "zero width or height (10 x 0)")
    add("png_zero_by_zero.png", ihdr_png(0, 0), "empty", "zero width or height (0 x 0)")
    add("png_100000x100000.png", ihdr_png(100000, 100000), "too_large",
        "100000 x 100000 = 10000000000 pixels, above the limit")
    add("png_width_2g.png", ihdr_png(0x80000000, 1), "corrupt", "above 2^31 - 1")
    add("png_1x1.png", encode_png(arr[:1, :1], 2, 8), "ok", "-")
    add("jpeg_soi_only.jpg", jpg[:3], "corrupt", "invalid JPEG image")
    add("jpeg_cut_in_header.jpg", jpg[:sof + 4], "corrupt", "truncated")
    add("jpeg_cut_after_header.jpg", jpg[:sos], "corrupt", "truncated")
    add("jpeg_cut_in_scan.jpg", jpg[:(sos + len(jpg)) // 2], "corrupt", "truncated")
    add("jpeg_no_eoi.jpg", jpg[:-2], "corrupt", "truncated")
    psos = jpeg_sos_end(prog)
    add("jpeg_progressive_cut.jpg", prog[:(psos + len(prog)) // 2], "corrupt", "truncated")
    add("jpeg_zero_width.jpg", patched(jpg, sof + 3, b"\0\0"), "empty", "zero width or height")
    add("jpeg_zero_height.jpg", patched(jpg, sof + 1, b"\0\0"), "empty", "zero width or height")
    add("jpeg_65500x65500.jpg", patched(jpg, sof + 1, struct.pack(">HH", 65500, 65500)),
        "too_large", "65500 x 65500 = 4290250000 pixels, above the limit")
    add("jpeg_12bit.jpg", patched(jpg, sof, b"\x0c"), "unsupported", "precision 12")
    tables = jpg[:sof - 4]
    add("jpeg_tables_only.jpg", tables + b"\xff\xd9", "corrupt", "invalid JPEG image")
    scan = bytearray(jpg)
    r = random.Random(2)
    for i in range(sos + 10, len(jpg) - 2, 7):
        b = r.randrange(256)
        scan[i] = b if b != 0xFF else 0x00
    add("jpeg_garbage_scan.jpg", bytes(scan), "any", "-")
    add("jpeg_cmyk.jpg", jpeg_bytes(face.convert("CMYK")), "ok", "-")
    add("jpeg_1x1.jpg", jpeg_bytes(face.crop((0, 0, 1, 1))), "ok", "-")
    add("jpeg_trailing_garbage.jpg", jpg + b"trailing bytes after EOI", "ok", "-")
    # Seeds for the truncation sweeps and random corruption in test_image.c.
    add("seed_rgb.png", png, "ok", "-")
    add("seed_interlaced_palette.png",
        encode_png((arr[:, :, 0] >> 4)[:, :, None], 3, 4, True,
                   plte=np.array([[i * 16, 255 - i * 16, i * 8] for i in range(16)], np.uint8)),
        "ok", "-")
    add("seed_baseline.jpg", jpg, "ok", "-")
    add("seed_progressive.jpg", prog, "ok", "-")
    with open(os.path.join(out_dir, "EXPECT"), "w") as f:
        f.write("# file status message-substring ('-': none); written by test/gen/golden_image.py\n")
        f.write("\n".join(entries) + "\n")
    print("golden_image.py: %d broken-corpus files in %s" % (len(entries), out_dir))


def main(argv):
    if len(argv) == 3 and argv[1] == "--fixtures":
        write_fixtures(argv[2])
    elif len(argv) == 2 and not argv[1].startswith("-"):
        write_goldens(argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
