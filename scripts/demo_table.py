#!/usr/bin/env python3
"""Prints (and writes as Markdown) the quickstart's results table: one row per evaluation run directory, with
each benchmark's score, the Average, the share of answers in the four-stage format and the compute per question.

Usage: scripts/demo_table.py OUT.md LABEL=RUN_DIR [LABEL=RUN_DIR ...]
Each RUN_DIR holds the results.json that `llavacot eval` writes. Scores are those of the <CONCLUSION> span
(the answer the demo model commits to); the "full" Average is VLMEvalKit's default answer source, for reference.
"""
import json
import os
import sys

SHORT = [("MMStar", "MMStar"), ("MMBench_DEV_EN_V11", "MMBench"), ("MMVet", "MM-Vet"),
         ("MathVista_MINI", "MathVista"), ("AI2D_TEST", "AI2D"), ("HallusionBench", "Hallusion")]


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"demo_table: cannot read {path}: {e}")


def cell(value):
    return "n/a" if value is None else f"{value:.1f}"


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    out_md = argv[1]
    header = ["run"] + [s for _, s in SHORT] + ["Average", "Average (full)", "4-stage %", "tokens/q", "passes/q", "s/q"]
    rows = []
    for arg in argv[2:]:
        label, run_dir = arg.split("=", 1)
        r = load(os.path.join(run_dir, "results.json"))
        bench = r.get("benchmarks", {})
        row = [label]
        for name, _ in SHORT:
            b = bench.get(name, {}).get("conclusion")
            unscored = not isinstance(b, dict) or (name == "MMVet" and b.get("needs_judge"))  # MM-Vet: judge only
            row.append(cell(None if unscored else b.get("headline")))
        avg = r.get("average", {})
        row += [cell(avg.get("conclusion")), cell(avg.get("full"))]
        fmt4 = r.get("four_stage_format", {})
        row.append(cell(100.0 * fmt4["fraction"]) if "fraction" in fmt4 else "n/a")
        per_q = r.get("compute_per_question", {})
        row += [f"{per_q.get('generated_tokens', 0):.0f}", f"{per_q.get('forward_passes', 0):.0f}",
                f"{per_q.get('seconds', 0):.2f}"]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    text = ("# Demo results\n\nScores of the <CONCLUSION> span on the demo benchmarks (MM-Vet needs a judge model: "
            "n/a without one); Average = mean over the benchmarks with a score. 'blank image' is the same model "
            "with every image replaced by a white one: a model that reads the image falls to chance there. "
            "tokens/q, passes/q, s/q: generated tokens, forward passes and seconds per question.\n\n" + table + "\n")
    tmp = out_md + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out_md)


if __name__ == "__main__":
    main(sys.argv)
