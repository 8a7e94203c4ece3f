#!/usr/bin/env python3
"""Peer side of `llavacot bench model`: the same workloads through transformers' MllamaForConditionalGeneration
(eager attention, the same thread count), so the two are measured side by side in one run.

  model_peers.py SPEC_JSON
SPEC_JSON: {"config_dir", "threads", "dtypes": [...], "train": {"batch", "seq", "iters"},
            "prefill": {"seq", "iters"}, "decode": {"batches": [...], "prompt", "steps"}, "aspect_ratio_id"}
Prints one JSON object: {dtype: {"train_s", "prefill_s", "decode": {batch: seconds for all steps}}}.
"""
import json
import sys
import time

import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration


def inputs(cfg, batch, seq, ar_id, gen):
    v = cfg.vision_config
    h, w = v.supported_aspect_ratios[ar_id - 1]
    tiles = h * w
    ids = torch.randint(0, cfg.text_config.vocab_size - 16, (batch, seq), generator=gen)
    ids[:, 0] = cfg.image_token_index
    pix = torch.zeros(batch, 1, v.max_num_tiles, 3, v.image_size, v.image_size)
    pix[:, :, :tiles] = torch.randn(batch, 1, tiles, 3, v.image_size, v.image_size, generator=gen)
    ar_mask = torch.zeros(batch, 1, v.max_num_tiles, dtype=torch.long)
    ar_mask[:, :, :tiles] = 1
    xmask = torch.zeros(batch, seq, 1, v.max_num_tiles, dtype=torch.long)
    xmask[:, :, :, :tiles] = 1
    return dict(input_ids=ids, pixel_values=pix, aspect_ratio_ids=torch.full((batch, 1), ar_id),
                aspect_ratio_mask=ar_mask, cross_attention_mask=xmask)


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    cfg = MllamaConfig.from_pretrained(spec["config_dir"])
    gen = torch.Generator().manual_seed(0)
    out = {}
    for dtype_name in spec["dtypes"]:
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
        torch.manual_seed(0)
        model = MllamaForConditionalGeneration(cfg).to(dtype)
        model.set_attn_implementation("eager")
        r = {}
        t = spec["train"]
        kw = inputs(cfg, t["batch"], t["seq"], spec["aspect_ratio_id"], gen)
        kw["pixel_values"] = kw["pixel_values"].to(dtype)
        model.train()
        times = []
        for i in range(t["iters"] + 1):
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss = model(**kw, labels=kw["input_ids"], use_cache=False).loss
            loss.backward()
            if i:
                times.append(time.perf_counter() - t0)
        r["train_s"] = min(times)
        model.eval()
        with torch.no_grad():
            p = spec["prefill"]
            kw = inputs(cfg, 1, p["seq"], spec["aspect_ratio_id"], gen)
            kw["pixel_values"] = kw["pixel_values"].to(dtype)
            times = []
            for i in range(p["iters"] + 1):
                t0 = time.perf_counter()
                model(**kw, use_cache=True, logits_to_keep=1)
                if i:
                    times.append(time.perf_counter() - t0)
            r["prefill_s"] = min(times)
            d = spec["decode"]
            r["decode"] = {}
            for batch in d["batches"]:
                kw = inputs(cfg, batch, d["prompt"], spec["aspect_ratio_id"], gen)
                kw["pixel_values"] = kw["pixel_values"].to(dtype)
                res = model(**kw, use_cache=True, logits_to_keep=1)
                cache, xmask = res.past_key_values, kw["cross_attention_mask"]
                tok = res.logits[:, -1].argmax(-1, keepdim=True)
                t0 = time.perf_counter()
                for _ in range(d["steps"]):
                    res = model(input_ids=tok, cross_attention_mask=xmask[:, -1:], past_key_values=cache,
                                use_cache=True, logits_to_keep=1)
                    cache = res.past_key_values
                    tok = res.logits[:, -1].argmax(-1, keepdim=True)
                r["decode"][str(batch)] = time.perf_counter() - t0
        out[dtype_name] = r
    print(json.dumps(out))


if __name__ == "__main__":
    main()
