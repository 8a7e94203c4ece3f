#!/usr/bin/env python3
"""Peer side of `llavacot bench tokenizer`: times tiktoken and Hugging Face tokenizers on the same documents
with the same vocabulary, pattern and special tokens, and prints one JSON object.

  tokenizer_peers.py TOKENIZER_JSON DOCS_JSONL THREADS
"""
import json
import os
import sys
import time


# The byte <-> character table of byte-level vocabularies, shared with the oracle tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "oracle"))
from tokenizer_oracle import bytes_to_unicode  # noqa: E402


def best_of(fn, repeats=3):
    best = None
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


def main():
    tok_json, docs_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # before tokenizers starts its pool
    docs = [json.loads(line) for line in open(docs_path, encoding="utf-8")]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    result = {"bytes": n_bytes, "docs": len(docs)}

    import tiktoken
    from tokenizers import Tokenizer

    data = json.load(open(tok_json, encoding="utf-8"))
    back = {v: k for k, v in bytes_to_unicode().items()}
    ranks = {bytes(back[ch] for ch in tok): rank for tok, rank in data["model"]["vocab"].items()}
    pattern = None
    for p in data["pre_tokenizer"].get("pretokenizers", [data["pre_tokenizer"]]):
        if p.get("type") == "Split":
            pattern = p["pattern"]["Regex"]
    specials = {a["content"]: a["id"] for a in data["added_tokens"]}
    enc = tiktoken.Encoding("llama3-bench", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)

    t, ids = best_of(lambda: [enc.encode_ordinary(d) for d in docs])
    result["tiktoken_1t_s"] = t
    result["tiktoken_tokens"] = sum(len(x) for x in ids)
    t, _ = best_of(lambda: enc.encode_ordinary_batch(docs, num_threads=threads))
    result["tiktoken_mt_s"] = t

    hf = Tokenizer.from_file(tok_json)
    hf.encode_special_tokens = True
    t, _ = best_of(lambda: hf.encode_batch(docs, add_special_tokens=False))
    result["tokenizers_mt_s"] = t
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    t, ids = best_of(lambda: [hf.encode(d, add_special_tokens=False).ids for d in docs])
    result["tokenizers_1t_s"] = t
    result["tokenizers_tokens"] = sum(len(x) for x in ids)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
