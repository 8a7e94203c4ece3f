#!/usr/bin/env python3
"""What a demo model reads from the image: the probability it gives each colour, shape and position word of the
CAPTION of demo training records, with the true answer fed in (teacher forcing), grouped by how many shapes the
scene holds.

Usage: scripts/demo_probe.py MODEL_DIR DATA_DIR [--records N]

MODEL_DIR is a Hugging Face directory (`llavacot export --checkpoint runs/demo/final --out DIR --dtype fp32`),
DATA_DIR a `llavacot make-demo-data` folder. Uses the last N shapes records of train.jsonl (default 200). Chance is
about 0.25 for a colour and 0.33 for a shape; a model that sees only which colours the picture holds scores
1/k on the colour of a scene with k colours. Needs torch, transformers and pillow.
"""
import argparse
import collections
import json
import os
import re
import sys

import torch
from PIL import Image
from transformers import AutoProcessor, MllamaForConditionalGeneration

COLOURS = {"red", "blue", "green", "yellow"}
SHAPES = {"circle", "square", "triangle"}
PLACES = {"top", "bottom", "left", "right", "center"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--records", type=int, default=200)
    a = ap.parse_args()
    model = MllamaForConditionalGeneration.from_pretrained(a.model).eval()
    proc = AutoProcessor.from_pretrained(a.model)
    path = os.path.join(a.data, "train.jsonl")
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                if r["image"].startswith("shapes/") and r["kind"] != "verify" and len(r["conversations"]) >= 2:
                    records.append(r)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                sys.exit(f"{path}:{number}: not a demo record ({type(e).__name__}: {e})")
    records = records[-a.records:]
    if not records:
        sys.exit(f"no shapes records in {path}")
    probs = collections.defaultdict(list)
    for r in records:
        question = r["conversations"][0]["value"].replace("<image>\n", "")
        answer = r["conversations"][1]["value"]
        found = re.search(r"<CAPTION> The image shows (\d+) shapes?", answer)
        if not found:
            continue
        n = int(found.group(1))
        image = Image.open(os.path.join(a.data, "images", r["image"])).convert("RGB")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        text = proc.apply_chat_template(messages, add_generation_prompt=True) + answer
        enc = proc(images=image, text=text, return_tensors="pt", add_special_tokens=False)
        ids = enc["input_ids"][0]
        with torch.no_grad():
            p = torch.softmax(model(**enc).logits[0, :-1].float(), -1)
        pieces = [proc.tokenizer.decode([int(t)]) for t in ids]
        starts, at = [], 0
        for piece in pieces:
            starts.append(at)
            at += len(piece)
        full = "".join(pieces)
        begin = full.find("<CAPTION>", full.find("assistant"))
        end = full.find("</CAPTION>", begin)
        listing = full.find("From left to right:", begin, end)  # the listing, after its lead-in
        begin = listing + len("From left to right:") if listing >= 0 else full.find("background:", begin, end)
        for i in range(1, len(ids)):
            if not begin <= starts[i] < end:
                continue
            word = pieces[i].strip()
            group = "colour" if word in COLOURS else "shape" if word in SHAPES else "where" if word in PLACES else None
            if group:
                probs[(group, min(n, 5))].append(float(p[i - 1, ids[i]]))
    print("word    shapes  words  mean P(true word)")
    for (group, n), values in sorted(probs.items()):
        print(f"{group:7} {('5+' if n == 5 else str(n)):>6}  {len(values):5}  {sum(values) / len(values):.3f}")


if __name__ == "__main__":
    main()
