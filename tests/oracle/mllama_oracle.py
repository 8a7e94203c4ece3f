#!/usr/bin/env python3
"""Reference side of the mllama model oracle tests: transformers' MllamaForConditionalGeneration on CPU.

  make DIR SEED [--new-keys]   build the model of DIR/config.json with random weights (seeded, scaled so
                               activations are of order one, every gate non-zero) and save it into DIR
                               (legacy keys; --new-keys writes the transformers >= 4.52 in-memory names)
  run DIR INPUTS OUT [--taps inputs]
                               load DIR (ours or theirs), run every case of INPUTS (a safetensors file of
                               "<case>.<field>" tensors) and write the results to OUT (safetensors).
                               --taps inputs: collect the vision encoder's intermediate states as
                               transformers 4.46 and Meta's reference do (the input of each tapped layer);
                               the pinned 5.x release collects each layer's output instead.

Case fields: input_ids, attention_mask, position_ids, pixel_values, aspect_ratio_ids, aspect_ratio_mask,
cross_attention_mask, labels, prefix (a 1-element tensor: run the first PREFIX tokens as one call, then the
others one at a time through the cache), generate (a 1-element tensor N: greedy generate(do_sample=False) of up
to N new tokens; optional eos: the ids that end it). Results: <case>.logits, .loss and .grad.<legacy name> (with
labels), .vision and .cross_states (with pixel values), .step_logits (with prefix), .generated (with generate:
the new token ids).
"""
import math
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import MllamaConfig, MllamaForConditionalGeneration


def legacy_name(name):
    """transformers >= 4.52 in-memory names -> the on-disk (legacy) names (mllama spec §3.2)."""
    for new, old in (("model.vision_model.", "vision_model."),
                     ("model.multi_modal_projector.", "multi_modal_projector."),
                     ("model.language_model.", "language_model.model."),
                     ("lm_head.", "language_model.lm_head.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def randomize(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = torch.randn(p.shape, generator=gen)
            if name.endswith("gate") or name.endswith("gate_attn") or name.endswith("gate_ffn"):
                v = torch.rand(p.shape, generator=gen) * 1.6 - 0.8
                v = v + 0.2 * torch.sign(v)  # |gate| >= 0.2 so every gated path matters
            elif "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.2 * n
            elif name.endswith("bias"):
                v = 0.1 * n
            elif "embed" in name and p.dim() <= 2:
                v = 0.5 * n
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                v = n / math.sqrt(fan_in)
            p.copy_(v)


def cmd_make(directory, seed, new_keys):
    cfg = MllamaConfig.from_pretrained(directory)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg).float()
    randomize(model, seed)
    if new_keys:
        tensors = {n: p.detach().contiguous() for n, p in model.named_parameters()}
        save_file(tensors, f"{directory}/model.safetensors", metadata={"format": "pt"})
    else:
        model.save_pretrained(directory)
    print("ok")


def case_names(inputs):
    names = []
    for key in inputs:
        case = key.split(".", 1)[0]
        if case not in names:
            names.append(case)
    return names


def collect_layer_inputs():
    """Makes MllamaVisionEncoder return (input of layer 0, ..., input of layer n-1, final output) as its hidden
    states, the order of transformers 4.46's MllamaVisionEncoder.forward."""
    from transformers.modeling_outputs import BaseModelOutput
    from transformers.models.mllama import modeling_mllama

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        states = ()
        for layer in self.layers:
            states = states + (hidden_states,)
            hidden_states = layer(hidden_states=hidden_states, attention_mask=attention_mask)
        states = states + (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=states)

    modeling_mllama.MllamaVisionEncoder.forward = forward


def cmd_run(directory, inputs_path, out_path, taps):
    if taps == "inputs":
        collect_layer_inputs()
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    inputs = load_file(inputs_path)
    out = {}
    for case in case_names(inputs):
        f = {k.split(".", 1)[1]: v for k, v in inputs.items() if k.startswith(case + ".")}
        kw = {k: f[k] for k in ("input_ids", "attention_mask", "position_ids", "pixel_values", "aspect_ratio_ids",
                                 "aspect_ratio_mask", "cross_attention_mask") if k in f}
        if "labels" in f:
            model.zero_grad(set_to_none=True)
            result = model(**kw, labels=f["labels"], use_cache=False)
            result.loss.backward()
            out[f"{case}.loss"] = result.loss.detach().reshape(1)
            for name, p in model.named_parameters():
                if p.grad is not None:
                    out[f"{case}.grad.{legacy_name(name)}"] = p.grad.detach().clone()
        with torch.no_grad():
            result = model(**kw, use_cache=False)
            out[f"{case}.logits"] = result.logits.float()
            if "pixel_values" in f:
                vm = model.model.vision_model
                vis = vm(pixel_values=f["pixel_values"], aspect_ratio_ids=f["aspect_ratio_ids"],
                         aspect_ratio_mask=f["aspect_ratio_mask"]).last_hidden_state
                out[f"{case}.vision"] = vis.contiguous()
                xs = model.model.multi_modal_projector(vis).reshape(vis.shape[0], -1, model.config.text_config.hidden_size)
                out[f"{case}.cross_states"] = xs.contiguous()
            if "prefix" in f:
                p = int(f["prefix"].item())
                ids = f["input_ids"]
                first = {k: (v[:, :p] if k in ("input_ids", "attention_mask", "position_ids", "cross_attention_mask")
                             else v) for k, v in kw.items()}
                r = model(**first, use_cache=True)
                cache = r.past_key_values
                steps = [r.logits[:, -1:]]
                for t in range(p, ids.shape[1]):
                    step = {"input_ids": ids[:, t:t + 1]}
                    if "attention_mask" in kw:
                        step["attention_mask"] = kw["attention_mask"][:, :t + 1]
                    if "position_ids" in kw:
                        step["position_ids"] = kw["position_ids"][:, t:t + 1]
                    if "cross_attention_mask" in kw:
                        step["cross_attention_mask"] = kw["cross_attention_mask"][:, t:t + 1]
                    r = model(**step, past_key_values=cache, use_cache=True)
                    cache = r.past_key_values
                    steps.append(r.logits[:, -1:])
                out[f"{case}.step_logits"] = torch.cat(steps, 1).float().contiguous()
            if "generate" in f:
                n = int(f["generate"].item())
                eos = [int(x) for x in f["eos"].tolist()] if "eos" in f else None
                ids = model.generate(**kw, do_sample=False, max_new_tokens=n, eos_token_id=eos,
                                     pad_token_id=model.config.text_config.pad_token_id, use_cache=True)
                out[f"{case}.generated"] = ids[:, f["input_ids"].shape[1]:].contiguous()
    save_file({k: v.contiguous() for k, v in out.items()}, out_path)
    print("ok")


def main():
    if sys.argv[1] == "make":
        cmd_make(sys.argv[2], int(sys.argv[3]), "--new-keys" in sys.argv[4:])
    elif sys.argv[1] == "run":
        cmd_run(sys.argv[2], sys.argv[3], sys.argv[4], "inputs" if "--taps" in sys.argv and
                sys.argv[sys.argv.index("--taps") + 1] == "inputs" else "outputs")
    else:
        sys.exit("unknown command")


if __name__ == "__main__":
    main()
