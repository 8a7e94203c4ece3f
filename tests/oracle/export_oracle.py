#!/usr/bin/env python3
"""Reference side of the export oracle test: an exported model directory loaded by transformers, offline.

  load DIR IMAGE PROMPT OUT     MllamaForConditionalGeneration.from_pretrained(DIR) and
                                AutoProcessor.from_pretrained(DIR) (local files only); the chat template applied to
                                one user turn (image, then PROMPT), the processor's inputs and the model's logits
                                for them, and the tokenizer's ids of a few texts, saved to OUT (safetensors):
                                input_ids, pixel_values, aspect_ratio_ids, aspect_ratio_mask, cross_attention_mask,
                                logits, text.<i> (ids of TEXTS[i]), chat.multi (ids of a whole conversation
                                through the chat template)
  convert SOURCE DIR DTYPE      every tensor of the export DIR equals the SOURCE checkpoint's tensor converted
                                with torch's .to(DTYPE) (bit for bit, NaN included); prints "ok N"
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

TEXTS = ["Describe this image in two sentences.", " Test sentence   ", "ok\n",
         "<SUMMARY>a plan</SUMMARY> <CONCLUSION>B</CONCLUSION>", "<|image|>What is it?<|eot_id|>"]


def tensors_of(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        with safe_open(os.path.join(directory, name), "pt") as f:
            for key in f.keys():
                out[key] = f.get_tensor(key)
    return out


def cmd_load(directory, image_path, prompt, out):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from PIL import Image
    from transformers import AutoProcessor, MllamaForConditionalGeneration
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    model = MllamaForConditionalGeneration.from_pretrained(directory, local_files_only=True, torch_dtype=torch.float32,
                                                           attn_implementation="eager")
    model.eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=Image.open(image_path), text=text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    result = {k: v.contiguous() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    result["logits"] = logits.float().contiguous()
    conversation = [
        {"role": "system", "content": "Answer in four stages."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<SUMMARY>I count.</SUMMARY>"}]},
        {"role": "user", "content": "And the colours?"},
    ]
    multi = processor.apply_chat_template(conversation, add_generation_prompt=True)
    result["chat.multi"] = torch.tensor(processor.tokenizer(multi, add_special_tokens=False)["input_ids"], dtype=torch.int64)
    for i, t in enumerate(TEXTS):
        result[f"text.{i}"] = torch.tensor(processor.tokenizer(t, add_special_tokens=False)["input_ids"], dtype=torch.int64)
    save_file(result, out)
    print("ok", len(result))


def cmd_convert(source, directory, dtype):
    want = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    src, exported = tensors_of(source), tensors_of(directory)
    assert set(src) == set(exported), (sorted(set(src) ^ set(exported)))[:5]
    for name, t in src.items():
        e = exported[name]
        assert e.dtype == want, (name, e.dtype)
        ref = t.to(want)
        same = torch.equal(ref.view(torch.int16) if want != torch.float32 else ref.view(torch.int32),
                           e.view(torch.int16) if want != torch.float32 else e.view(torch.int32))
        assert same, f"{name}: the exported {dtype} bits differ from torch's conversion"
    print("ok", len(src))


def main():
    if sys.argv[1] == "load":
        cmd_load(*sys.argv[2:6])
    elif sys.argv[1] == "convert":
        cmd_convert(*sys.argv[2:5])
    else:
        raise SystemExit("usage: export_oracle.py load DIR IMAGE PROMPT OUT | convert SOURCE DIR DTYPE")


if __name__ == "__main__":
    main()
