#!/usr/bin/env python3
"""Peer side of `llavacot bench decode`: transformers' generate() on the same model, inputs and threads.

  decode_peer.py SPEC_JSON
SPEC_JSON: {"model_dir", "inputs" (safetensors: input_ids [1, S], pixel_values, aspect_ratio_ids,
            aspect_ratio_mask, cross_attention_mask), "threads", "rows": [...], "steps", "candidates", "iters"}
Prints one JSON object:
  {"generate": {rows: {"full_s", "first_s"}},   generate() of `steps` and of 1 new token for `rows` copies of the
                                                prompt (greedy); decode time = full_s - first_s
   "sequential_candidates_s": seconds for `candidates` sampled generate() calls of `steps` tokens, one at a time
                              (how the released LLaVA-CoT code produces a stage's candidates),
   "peak_rss_mb"}
"""
import json
import resource
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import MllamaForConditionalGeneration


def best(fn, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    model = MllamaForConditionalGeneration.from_pretrained(spec["model_dir"], dtype=torch.float32,
                                                           attn_implementation="sdpa")
    model.eval()
    inputs = load_file(spec["inputs"])
    pad = model.config.text_config.pad_token_id
    steps, iters = spec["steps"], spec["iters"]
    out = {"generate": {}}
    with torch.no_grad():
        for rows in spec["rows"]:
            kw = {k: v.repeat(rows, *([1] * (v.dim() - 1))) for k, v in inputs.items()}

            def run(n):
                model.generate(**kw, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=pad)

            run(2)  # warm-up
            out["generate"][str(rows)] = {"full_s": best(lambda: run(steps), iters), "first_s": best(lambda: run(1), iters)}

        def sequential():
            for c in range(spec["candidates"]):
                torch.manual_seed(c)
                model.generate(**inputs, do_sample=True, temperature=0.6, top_p=0.9, max_new_tokens=steps,
                               min_new_tokens=steps, pad_token_id=pad)

        out["sequential_candidates_s"] = best(sequential, iters)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
