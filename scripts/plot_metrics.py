#!/usr/bin/env python3
"""Draws the curves of a llavacot training run from its metrics.jsonl.

Usage: scripts/plot_metrics.py RUN_DIR/metrics.jsonl [--out DIR]

Writes loss.png (with a moving average), lr.png and throughput.png (tokens/s and samples/s) into DIR (default:
the folder of metrics.jsonl). Skipped steps (loss null) are left out of the loss curve. Needs matplotlib.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"{path}:{n}: skipped a line that is not JSON ({e})", file=sys.stderr)
    if not rows:
        sys.exit(f"{path}: no metrics lines")
    return rows


def moving_average(values, window):
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def plot(x, series, ylabel, path, logy=False):
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, y, style in series:
        ax.plot(x[: len(y)] if len(x) >= len(y) else x, y, style, label=label, linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = read(args.metrics)
    out = args.out or os.path.dirname(os.path.abspath(args.metrics))
    os.makedirs(out, exist_ok=True)
    good = [r for r in rows if r.get("loss") is not None]
    steps = [r["step"] for r in good]
    losses = [r["loss"] for r in good]
    window = max(1, len(losses) // 20)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, ".", markersize=2, alpha=0.4, label="loss")
    ax.plot(steps, moving_average(losses, window), "-", label=f"moving average ({window})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.png"), dpi=120)
    plt.close(fig)
    all_steps = [r["step"] for r in rows]
    plot(all_steps, [("lr", [r["lr"] for r in rows], "-")], "learning rate", os.path.join(out, "lr.png"))
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(all_steps, [r["tokens_per_s"] for r in rows], "-", color="tab:blue", label="tokens/s")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("tokens/s", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(all_steps, [r["samples_per_s"] for r in rows], "-", color="tab:orange", label="samples/s")
    ax2.set_ylabel("samples/s", color="tab:orange")
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=120)
    plt.close(fig)
    print(f"wrote loss.png, lr.png, throughput.png to {out}")


if __name__ == "__main__":
    main()
