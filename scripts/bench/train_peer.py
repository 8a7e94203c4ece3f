#!/usr/bin/env python3
"""Peer side of `llavacot bench train`: one training step configuration in a plain PyTorch loop, in this fresh
process (so its peak memory is its own): transformers' MllamaForConditionalGeneration (sdpa attention, eager
where sdpa is refused), torch.optim.AdamW (its default foreach implementation), clip_grad_norm_(1.0),
torch.autocast(cpu, bfloat16) for the bf16 modes, gradient checkpointing for the +ckpt modes.

  train_peer.py SPEC_JSON
SPEC_JSON: {"config_dir", "threads", "mode": fp32|fp32+ckpt|bf16|bf16+ckpt, "batch", "seq", "aspect_ratio_id",
            "iters"}
Prints one JSON object: {"step_s": best step seconds, "base_rss": bytes before the first step,
                         "peak_rss": peak resident bytes}.
"""
import contextlib
import json
import resource
import sys
import time

import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from model_peers import inputs  # noqa: E402


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    cfg = MllamaConfig.from_pretrained(spec["config_dir"])
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(cfg)
    try:
        model.set_attn_implementation("sdpa")
    except Exception:  # noqa: BLE001 - keep the default when sdpa is refused
        model.set_attn_implementation("eager")
    model.train()
    if "+ckpt" in spec["mode"]:
        model.gradient_checkpointing_enable()
    gen = torch.Generator().manual_seed(0)
    kw = inputs(cfg, spec["batch"], spec["seq"], spec["aspect_ratio_id"], gen)
    base = rss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if spec["mode"].startswith("bf16") else contextlib.nullcontext()

    def step():
        with autocast:
            loss = model(**kw, labels=kw["input_ids"], use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(spec["iters"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"step_s": min(times), "base_rss": base, "peak_rss": peak}))


if __name__ == "__main__":
    main()
