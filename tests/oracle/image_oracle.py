#!/usr/bin/env python3
"""Reference side of the image oracle tests: Pillow and transformers' Mllama image processor (PIL variant).

  make-images DIR N SEED     write N random images (PNG and JPEG, sizes 1x1 .. 3000x4000) and special cases
                             (RGBA, palette with transparency, grey, 16-bit grey and RGB, EXIF-rotated JPEG);
                             prints the list of file names
  decode DIR REF             for each image, Pillow + convert_to_rgb -> REF/NAME.rgb (raw H*W*3); prints sizes
  resize DIR REF             Pillow BILINEAR resize of each image to a pseudo-random size -> REF/NAME.resized
  process DIR REF TILE MAXT [N]
                             run MllamaImageProcessorPil on batches of the images; save tensors to
                             REF/batchK.safetensors; prints the batch layout as JSON
  xattn                      print reference cross-attention masks for a few id lists (JSON)
"""
import io
import json

# The 11B preprocessor_config.json values (mllama spec §4.1); the class defaults (0.5 mean/std) are not these.
CLIP_11B = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
                rescale_factor=1 / 255, do_convert_rgb=True, do_resize=True, do_rescale=True, do_normalize=True,
                do_pad=True, resample=2)
import os
import random
import sys

import numpy as np
from PIL import Image


def rand_size(rng, i):
    edge = {0: (1, 1), 1: (1, 2000), 2: (2000, 1), 3: (560, 560), 4: (561, 1119)}
    if i in edge:
        return edge[i]
    if i % 40 == 39:  # a few large ones; they dominate the run time
        return [(3000, 4000), (1080, 1920), (300, 2000), (2000, 300), (2240, 560)][(i // 40) % 5]
    kind = rng.random()
    if kind < 0.2:
        return rng.randint(1, 16), rng.randint(1, 16)
    if kind < 0.8:
        return rng.randint(17, 700), rng.randint(17, 700)
    return rng.randint(300, 1300), rng.randint(300, 1300)


def make_images(d, n, seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    os.makedirs(d, exist_ok=True)
    names = []
    for i in range(n):
        h, w = rand_size(rng, i)
        # Smooth gradients plus noise, so resizing has something to blend.
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 7 + yy * 3) % 256, (xx * 2 + yy * 5) % 256, (xx ^ yy) % 256], -1)
        noise = nrng.integers(0, 40, size=(h, w, 3))
        arr = ((base + noise) % 256).astype(np.uint8)
        name = f"img{i:03d}.png" if i % 3 else f"img{i:03d}.jpg"
        Image.fromarray(arr).save(os.path.join(d, name), quality=90) if name.endswith("jpg") else \
            Image.fromarray(arr).save(os.path.join(d, name))
        names.append(name)
    # Special cases for the decoder.
    h, w = 37, 53
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 1] = np.arange(w)[None, :] * 4
    rgba[..., 2] = 17
    rgba[..., 3] = (np.arange(h)[:, None] * 7) % 256
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "rgba.png"))
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.info["transparency"] = 3
    pal.save(os.path.join(d, "palette_trns.png"), transparency=3)
    Image.fromarray(rgba[..., :3]).convert("P", palette=Image.ADAPTIVE, colors=32).save(os.path.join(d, "palette.png"))
    Image.fromarray(rgba[..., 1]).save(os.path.join(d, "grey.png"))
    grey16 = (np.arange(h * w).reshape(h, w) * 37 % 65536).astype(np.uint16)
    Image.fromarray(grey16).save(os.path.join(d, "grey16.png"))
    Image.fromarray(rgba[..., :3]).save(os.path.join(d, "grey_like.bmp"))
    Image.fromarray(rgba[..., :3]).save(os.path.join(d, "tiff.tiff"))
    Image.fromarray(rgba[..., :3]).convert("P").save(os.path.join(d, "anim.gif"))
    Image.fromarray(rgba[..., :3]).save(os.path.join(d, "lossless.webp"), lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW; must NOT be applied
    Image.fromarray(rgba[..., :3]).save(os.path.join(d, "exif_rotated.jpg"), exif=exif, quality=95)
    names += ["rgba.png", "palette_trns.png", "palette.png", "grey.png", "grey16.png", "grey_like.bmp", "tiff.tiff",
              "anim.gif", "lossless.webp", "exif_rotated.jpg"]
    # names.json is written last and atomically: its presence means the set is complete.
    with open(os.path.join(d, "names.json.tmp"), "w") as f:
        json.dump(names, f)
    os.replace(os.path.join(d, "names.json.tmp"), os.path.join(d, "names.json"))
    print(json.dumps(names))


def to_rgb(path):
    from transformers.image_transforms import convert_to_rgb
    return np.asarray(convert_to_rgb(Image.open(path), return_numpy=True), dtype=np.uint8)


def decode(d, ref):
    names = json.load(open(os.path.join(d, "names.json")))
    os.makedirs(ref, exist_ok=True)
    out = {}
    for n in names:
        arr = to_rgb(os.path.join(d, n))
        arr.tofile(os.path.join(ref, n + ".rgb"))
        out[n] = [int(arr.shape[0]), int(arr.shape[1])]
    print(json.dumps(out))


def resize(d, ref):
    names = json.load(open(os.path.join(d, "names.json")))
    rng = random.Random(7)
    out = {}
    for n in names:
        img = Image.fromarray(to_rgb(os.path.join(d, n)))
        h, w = rng.randint(1, 900), rng.randint(1, 900)
        r = np.asarray(img.resize((w, h), Image.BILINEAR, reducing_gap=None), dtype=np.uint8)
        os.makedirs(ref, exist_ok=True)
        r.tofile(os.path.join(ref, n + ".resized"))
        out[n] = [h, w]
    print(json.dumps(out))


def process(d, ref, tile, max_tiles, limit):
    from safetensors.numpy import save_file
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
    os.makedirs(ref, exist_ok=True)
    proc = MllamaImageProcessorPil(size={"height": tile, "width": tile}, max_image_tiles=max_tiles, **CLIP_11B)
    names = json.load(open(os.path.join(d, "names.json")))[:limit]
    rng = random.Random(11 + tile)
    layout = []
    i = 0
    k = 0
    while i < len(names):
        batch = []
        for _ in range(rng.randint(1, 3)):  # samples per batch
            cnt = rng.randint(1, 3)          # images per sample
            batch.append(names[i:i + cnt])
            i += cnt
            if i >= len(names):
                break
        batch = [s for s in batch if s]
        images = [[Image.open(os.path.join(d, n)) for n in s] for s in batch]
        res = proc(images, return_tensors="np")
        save_file({"pixel_values": np.ascontiguousarray(res["pixel_values"].astype(np.float32)),
                   "aspect_ratio_ids": np.ascontiguousarray(res["aspect_ratio_ids"].astype(np.int64)),
                   "aspect_ratio_mask": np.ascontiguousarray(res["aspect_ratio_mask"].astype(np.int64))},
                  os.path.join(ref, f"batch{tile}_{k}.safetensors"))
        layout.append({"file": f"batch{tile}_{k}.safetensors", "samples": batch})
        k += 1
    print(json.dumps(layout))


def xattn():
    from transformers.models.mllama.processing_mllama import (convert_sparse_cross_attention_mask_to_dense,
                                                              get_cross_attention_token_mask)
    cases = [
        ([[128256, 128000, 2028, 374]], [[4]]),
        ([[1, 128256, 2, 3, 128256, 4, 5, 0, 0]], [[2, 3]]),
        ([[128256, 128256, 7, 8, 128256, 9]], [[1, 4, 2]]),
        ([[5, 128256, 6, 0], [128256, 1, 2, 3]], [[3], [1]]),
    ]
    out = []
    for ids, tiles in cases:
        sparse = [get_cross_attention_token_mask(row, 128256) for row in ids]
        length = max(len(r) for r in ids)
        dense = convert_sparse_cross_attention_mask_to_dense(sparse, tiles, max_num_tiles=4, length=length)
        out.append({"ids": ids, "tiles": tiles, "mask": np.asarray(dense).astype(int).tolist()})
    print(json.dumps(out))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-images":
        make_images(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "decode":
        decode(sys.argv[2], sys.argv[3])
    elif cmd == "resize":
        resize(sys.argv[2], sys.argv[3])
    elif cmd == "process":
        process(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                int(sys.argv[6]) if len(sys.argv) > 6 else 10**9)
    elif cmd == "xattn":
        xattn()
    else:
        sys.exit(f"unknown command {cmd}")
