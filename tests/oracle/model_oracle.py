#!/usr/bin/env python3
"""Reference side of the model oracle tests (transformers' mllama).

  params DIR   load DIR/config.json with MllamaConfig, build MllamaForConditionalGeneration on the meta device,
               print {"params": {legacy name: shape}, "text": {...}, "vision": {...}} as JSON
"""
import json
import sys

import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration


def legacy_name(name):
    """transformers >= 4.52 in-memory names -> the on-disk (legacy) names (mllama spec §3.2)."""
    if name.startswith("model.vision_model."):
        return name[len("model."):]
    if name.startswith("model.multi_modal_projector."):
        return name[len("model."):]
    if name.startswith("model.language_model."):
        return "language_model.model." + name[len("model.language_model."):]
    if name.startswith("lm_head."):
        return "language_model." + name
    return name


def main():
    if sys.argv[1] != "params":
        sys.exit("unknown command")
    cfg = MllamaConfig.from_pretrained(sys.argv[2])
    with torch.device("meta"):
        model = MllamaForConditionalGeneration(cfg)
    params = {legacy_name(n): list(p.shape) for n, p in model.state_dict().items()}
    text = cfg.text_config
    rope = getattr(text, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(text, "rope_theta", None))
    print(json.dumps({"params": params, "text": {"rope_theta": theta},
                      "vision": {"attention_heads": cfg.vision_config.attention_heads}}))


if __name__ == "__main__":
    main()
