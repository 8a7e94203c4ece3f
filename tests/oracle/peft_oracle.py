#!/usr/bin/env python3
"""Reference side of the LoRA oracle test: the peft package on transformers' MllamaForConditionalGeneration.

  run BASE ADAPTER INPUTS OUT   load BASE (fp32, eager attention), put the PEFT adapter in ADAPTER on it with
                                PeftModel.from_pretrained, and write the logits for INPUTS (a safetensors file with
                                input_ids, attention_mask, pixel_values, aspect_ratio_ids, aspect_ratio_mask,
                                cross_attention_mask) to OUT as "logits"
  make BASE ADAPTER SEED        a LoRA adapter made by peft itself (r 4, alpha 8, q_proj / v_proj / fc1, B drawn at
                                random so it changes the outputs), saved with save_pretrained into ADAPTER
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

os.environ["HF_HUB_OFFLINE"] = "1"


def base_model(path):
    from transformers import MllamaForConditionalGeneration
    model = MllamaForConditionalGeneration.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32,
                                                           attn_implementation="eager")
    return model.eval()


def cmd_run(base, adapter, inputs, out):
    from peft import PeftModel
    model = PeftModel.from_pretrained(base_model(base), adapter).eval()
    batch = load_file(inputs)
    with torch.no_grad():
        logits = model(**batch).logits
    save_file({"logits": logits.float().contiguous()}, out)
    print("ok")


def cmd_make(base, adapter, seed):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(int(seed))
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "fc1"],
                        init_lora_weights=False)
    model = get_peft_model(base_model(base), config)
    model.save_pretrained(adapter)
    print("ok")


if __name__ == "__main__":
    {"run": cmd_run, "make": cmd_make}[sys.argv[1]](*sys.argv[2:])
