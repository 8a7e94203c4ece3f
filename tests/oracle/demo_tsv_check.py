"""Format checks of a `llavacot make-demo-data` folder with the standard Python tools VLMEvalKit itself uses.

Usage: demo_tsv_check.py DIR [IDS_OUT]

Reads every benchmark TSV with the csv module (tab delimiter, standard quoting) and with pandas.read_csv
(as vlmeval.smp.load does), checks the columns of each layout, decodes every image with Pillow, resolves image
references, checks MMBench's circular copies and HallusionBench's set/figure/question ids, parses MathVista's
list literals, and reads train.jsonl with the json module. With IDS_OUT, also encodes the turns of the first
100 records with the `tokenizers` package and the folder's tokenizer.json and writes the ids there, for the C++
side to compare with its own encoding. Prints one JSON line: {"ok": true, ...} or
{"ok": false, "errors": [...]}.
"""
import ast
import base64
import csv
import io
import json
import os
import sys

import pandas as pd
from PIL import Image

COLUMNS = {
    "MMStar": ["index", "question", "A", "B", "C", "D", "answer", "category", "image"],
    "MMBench_DEV_EN_V11": ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                           "split", "g_index", "image"],
    "MMVet": ["index", "question", "answer", "category", "image"],
    "MathVista_MINI": ["index", "image", "question", "answer", "question_type", "answer_type", "choices",
                       "answer_option", "task", "skills", "precision", "unit"],
    "AI2D_TEST": ["index", "question", "A", "B", "C", "D", "answer", "category", "abcLabel", "image_path", "image"],
    "HallusionBench": ["index", "question", "answer", "category", "l2-category", "image"],
}

errors = []


def err(msg):
    if len(errors) < 50:
        errors.append(msg)


def decode_image(cell, where):
    try:
        img = Image.open(io.BytesIO(base64.b64decode(cell, validate=True)))
        img.load()
        return img.size
    except Exception as e:  # noqa: BLE001 - any failure is a finding
        err(f"{where}: image does not decode: {e}")
        return None


def check(root):
    summary = {}
    for name, columns in COLUMNS.items():
        path = os.path.join(root, "bench", name + ".tsv")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        header, body = rows[0], rows[1:]
        if header != columns:
            err(f"{name}: columns {header} != {columns}")
            continue
        recs = [dict(zip(header, r)) for r in body]
        for i, r in enumerate(body):
            if len(r) != len(header):
                err(f"{name} row {i + 2}: {len(r)} fields for {len(header)} columns")
        df = pd.read_csv(path, sep="\t")
        if len(df) != len(recs):
            err(f"{name}: pandas reads {len(df)} rows, csv {len(recs)}")
        images = {r["index"]: r["image"] for r in recs if len(r["image"]) > 64}
        sizes = set()
        for r in recs:
            cell = r["image"]
            if 0 < len(cell) <= 64:
                if cell not in images:
                    err(f"{name} {r['index']}: image reference {cell!r} names no row with an image")
            else:
                s = decode_image(cell, f"{name} {r['index']}")
                if s:
                    sizes.add(s)
        if name in ("MMStar", "MMBench_DEV_EN_V11", "AI2D_TEST"):
            for r in recs:
                opts = [c for c in "ABCD" if r[c] != ""]
                if r["answer"] not in opts:
                    err(f"{name} {r['index']}: answer {r['answer']!r} is not one of the options {opts}")
                if len(set(r[c] for c in opts)) != len(opts):
                    err(f"{name} {r['index']}: repeated option texts")
                # The demo model answers with the right option's text; VLMEvalKit's can_infer_text maps it back
                # only when no other option's text is inside it.
                said = r[r["answer"]].lower()
                inside = [c for c in opts if r[c].lower() in said]
                if inside != [r["answer"]]:
                    err(f"{name} {r['index']}: the answer's text {said!r} contains options {inside}")
            if df["index"].dtype.kind != "i":
                err(f"{name}: pandas does not read index as integers")
        if name == "MMBench_DEV_EN_V11":
            groups = {}
            for r in recs:
                groups.setdefault(int(r["g_index"]), []).append(r)
                if int(r["index"]) % 1000000 != int(r["g_index"]):
                    err(f"MMBench {r['index']}: index % 1e6 != g_index")
            for g, rs in groups.items():
                n = len([c for c in "ABCD" if rs[0][c] != ""])
                if len(rs) != n:
                    err(f"MMBench group {g}: {len(rs)} passes for {n} options")
                if len({r[r["answer"]] for r in rs}) != 1:
                    err(f"MMBench group {g}: the correct option's text differs between passes")
                if len({r["answer"] for r in rs}) != n:
                    err(f"MMBench group {g}: the answer letter does not move through every option")
            summary["mmbench_groups"] = len(groups)
        if name == "MathVista_MINI":
            for r in recs:
                if r["question_type"] == "multi_choice":
                    choices = ast.literal_eval(r["choices"])
                    letter = r["answer_option"]
                    if choices["ABCD".index(letter)] != r["answer"]:
                        err(f"MathVista {r['index']}: answer_option {letter} is not the answer {r['answer']!r}")
                    if "\nChoices:\n(A) " not in r["question"]:
                        err(f"MathVista {r['index']}: multi_choice question has no Choices block")
                else:
                    int(r["answer"])
                    if r["answer_type"] != "integer":
                        err(f"MathVista {r['index']}: free_form answer_type {r['answer_type']}")
                ast.literal_eval(r["skills"])
                if not r["question"].startswith("Hint: "):
                    err(f"MathVista {r['index']}: question does not start with the hint")
        if name == "HallusionBench":
            for r in recs:
                fields = r["index"].split("_")
                if len(fields) != 6 or not all(x.isdigit() for x in fields[3:]):
                    err(f"HallusionBench {r['index']}: index is not CAT_SUB_1_SET_FIG_Q")
                if r["answer"] not in ("Yes", "No"):
                    err(f"HallusionBench {r['index']}: answer {r['answer']!r}")
                if r["l2-category"] != "_".join(fields[:2]) or r["category"] != fields[0]:
                    err(f"HallusionBench {r['index']}: category columns disagree with the index")
            if df["index"].dtype.kind in "iuf":
                err("HallusionBench: pandas reads string indexes as numbers")
            yes = sum(r["answer"] == "Yes" for r in recs)
            summary["hallusion_yes_share"] = yes / len(recs)
        if name == "MMVet":
            for r in recs:
                tags = r["category"].split(",")
                if not set(tags) <= {"rec", "ocr", "know", "gen", "spat", "math"}:
                    err(f"MMVet {r['index']}: category {r['category']!r}")
        summary[name] = {"rows": len(recs), "image_sizes": sorted(sizes)}
    n = 0
    with open(os.path.join(root, "train.jsonl"), encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            rec = json.loads(line)
            n += 1
            if not os.path.isfile(os.path.join(root, "images", rec["image"])):
                err(f"train.jsonl:{line_no}: image {rec['image']} is missing")
    summary["train_records"] = n
    return summary


def encode_turns(root, out_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(root, "tokenizer.json"))
    texts = []
    with open(os.path.join(root, "train.jsonl"), encoding="utf-8") as f:
        for line in list(f)[:100]:
            texts += [t["value"] for t in json.loads(line)["conversations"]]
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    with open(out_path, "w") as f:
        json.dump({"texts": texts, "ids": ids, "vocab_size": tok.get_vocab_size(with_added_tokens=True)}, f)


if __name__ == "__main__":
    summary = check(sys.argv[1])
    if len(sys.argv) > 2:
        encode_turns(sys.argv[1], sys.argv[2])
    print(json.dumps({"ok": not errors, "errors": errors, "summary": summary}))
