"""Copies a VLMEvalKit TSV with every image replaced by a white PNG of the same size: the file an image ablation
must be equivalent to. Usage: whiten_tsv.py IN.tsv OUT.tsv"""
import base64
import csv
import io
import sys

from PIL import Image

csv.field_size_limit(1 << 30)
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), delimiter="\t")
    w.writeheader()
    for row in rows:
        if len(row["image"]) < 64:  # VLMEvalKit's reference to another row's image (whitened there)
            w.writerow(row)
            continue
        size = Image.open(io.BytesIO(base64.b64decode(row["image"]))).size
        buf = io.BytesIO()
        Image.new("RGB", size, (255, 255, 255)).save(buf, format="PNG")
        row["image"] = base64.b64encode(buf.getvalue()).decode("ascii")
        w.writerow(row)
