#!/usr/bin/env python3
"""Peer side of `llavacot bench image`: transformers' Mllama image processor on the same JPEG bytes.

  image_peers.py JPEG_FILE ITERATIONS OUT_SAFETENSORS
Prints {"pil_s_per_image": ..., "torchvision_s_per_image": ... or null} and saves the PIL variant's
pixel_values for the identical-output check.
"""
import io
import json

# The 11B preprocessor_config.json values (mllama spec §4.1); the class defaults (0.5 mean/std) are not these.
CLIP_11B = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
                rescale_factor=1 / 255, do_convert_rgb=True, do_resize=True, do_rescale=True, do_normalize=True,
                do_pad=True, resample=2)
import sys
import time


def main():
    path, iters, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    data = open(path, "rb").read()
    from PIL import Image
    from safetensors.numpy import save_file
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    result = {}
    proc = MllamaImageProcessorPil(size={"height": 560, "width": 560}, max_image_tiles=4, **CLIP_11B)
    res = proc([[Image.open(io.BytesIO(data))]], return_tensors="np")  # warm-up, and the output to compare
    save_file({"pixel_values": res["pixel_values"].astype("float32")}, out)
    t0 = time.perf_counter()
    for _ in range(iters):
        proc([[Image.open(io.BytesIO(data))]], return_tensors="np")
    result["pil_s_per_image"] = (time.perf_counter() - t0) / iters
    try:
        import torchvision  # noqa: F401
        from transformers.models.mllama.image_processing_mllama import MllamaImageProcessor
        tv = MllamaImageProcessor(size={"height": 560, "width": 560}, max_image_tiles=4, **CLIP_11B)
        tv([[Image.open(io.BytesIO(data))]], return_tensors="pt")
        t0 = time.perf_counter()
        for _ in range(iters):
            tv([[Image.open(io.BytesIO(data))]], return_tensors="pt")
        result["torchvision_s_per_image"] = (time.perf_counter() - t0) / iters
    except ImportError:
        result["torchvision_s_per_image"] = None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
