"""Reference side of the trainer oracle: transformers' MllamaForConditionalGeneration trained by a plain
PyTorch loop (torch.optim.AdamW, a LambdaLR schedule, torch.nn.utils.clip_grad_norm_) on the batches our
loader produced.

  train_oracle.py MODEL_DIR BATCH_DIR STEPS LR WARMUP WEIGHT_DECAY CLIP

MODEL_DIR holds config.json and the initial weights (legacy keys); BATCH_DIR holds batch_000.safetensors ...
(input_ids, attention_mask, labels, pixel_values, aspect_ratio_ids, aspect_ratio_mask, cross_attention_mask).
The schedule is warmup (lr x step / WARMUP) then cosine decay to 0 at STEPS, as transformers'
get_cosine_schedule_with_warmup. Prints one JSON line: {"losses": [...]}.
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import MllamaForConditionalGeneration


def main():
    model_dir, batch_dir = sys.argv[1], sys.argv[2]
    steps, lr, warmup = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    weight_decay, clip = float(sys.argv[6]), float(sys.argv[7])
    torch.set_num_threads(1)
    model = MllamaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)

    def factor(s):
        if s < warmup:
            return s / max(1, warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    losses = []
    for step in range(steps):
        batch = load_file(os.path.join(batch_dir, f"batch_{step:03d}.safetensors"))
        out = model(**batch)
        out.loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    print(json.dumps({"losses": losses}))


if __name__ == "__main__":
    main()
