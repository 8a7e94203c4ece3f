#!/usr/bin/env python3
"""Reference side of the tokenizer oracle tests, using the Hugging Face `tokenizers` package.

  corpus TOKENIZER_JSON OUT_JSONL   write the test corpus with reference ids, one JSON object per line:
                                    {"text", "special" (special tokens allowed), "plain" (special text as text)}
  tiktoken TOKENIZER_JSON OUT       convert tokenizer.json's vocabulary into a tiktoken rank file
  encode TOKENIZER_JSON             read JSON strings from stdin, print reference ids (specials allowed)
"""
import base64
import json
import random
import sys

from tokenizers import Tokenizer


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


PROSE = [
    "This is a test sentence.", "Describe this image in two sentences", " Test sentence   ", "ok\n",
    "If I had to write a haiku", "The quick brown fox jumps over the lazy dog.",
    "What is the area of the triangle shown in the figure? Answer with the option's letter.",
    "<SUMMARY>I will count the objects.</SUMMARY>\n\n<CAPTION>Three red circles.</CAPTION>",
    "Hello world! This is a test.", "Well... that's (mostly) right; isn't it?", "E = mc^2, said Einstein in 1905.",
    "Naïve café résumé coöperate façade", "Straße, Größe, Äpfel — “quoted” ‘text’ … ellipsis",
]
CODE = [
    "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    '{"key": [1, 2, 3], "nested": {"a": null}}', "#include <torch/torch.h>\nint main() { return 0; }",
    "SELECT * FROM users WHERE id = 42;", "x=1;y=2;z=x+y", "    indented\n        more\n", "a\tb\tc\n1\t2\t3",
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
SCRIPTS = [
    "你好，世界！这是一个测试。", "こんにちは世界、テストです。", "안녕하세요 세계", "مرحبا بالعالم، هذا اختبار.",
    "नमस्ते दुनिया, यह एक परीक्षण है।", "Привет, мир! Это тест.", "Γειά σου Κόσμε", "שלום עולם", "สวัสดีชาวโลก",
]
EMOJI = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇺🇸🇯🇵", "😀😃😄", "❤️", "🧑🏿‍💻", "1️⃣", "👩‍❤️‍💋‍👨"]
COMBINING = ["e\u0301", "n\u0303", "a\u0308\u0304", "Z\u0351\u0364\u0344a\u0306\u0358l\u0352g\u0357o", "\u0915\u093f"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u2003", "\u3000", "\u200b", "\u0085", "\u2028", "\u000b",
          "\u000c", "\u1680", "\u202f", "\u205f", "\u180e", "\ufeff"]
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|image|>", "<|reserved_special_token_5|>", "<|python_tag|>", "<|eom_id|>", "<|finetune_right_pad_id|>"]


def corpus():
    rng = random.Random(20261128)
    out = ["", " ", "a", "\n\n", "ok\n"]
    out += PROSE + CODE + SCRIPTS + EMOJI + COMBINING
    for n in range(1, 41):  # digits of every length
        out.append("".join(rng.choice("0123456789") for _ in range(n)))
        out.append(f"x{'7' * n}y")
    out += ["3.14159", "1,234,567.89", "-42", "2026-11-28", "v1.2.3", "0x7fff", "1e-5", "١٢٣٤", "१२३", "½ ⅔ ²"]
    for n in range(1, 13):  # whitespace runs
        for s in [" ", "\t", "\n", "\r\n", " \n", "\n "]:
            out.append(s * n)
            out.append("a" + s * n + "b")
            out.append(s * n + "word")
            out.append("word" + s * n)
    for c in CONTRACTIONS:
        for variant in {c, c.upper(), c.capitalize(), c[0] + c[1:].swapcase()}:
            out += [f"it{variant}", f"IT{variant} fine", f"{variant}", f"they {variant}x", f"don{variant}"]
    out += ["a" * 1000, "supercalifragilisticexpialidocious" * 30, " " + "ab" * 700, "x" * 5000,
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3000))]
    for s in SPECIALS:
        out += [s, "hello" + s + "world", s + s, " " + s + " ", "<" + s + ">", s[:-1], s[1:], s.upper()]
    out += ["<|image|>If I had to write a haiku for this one", "<|eot_id", "|>", "<|", "<||>"]
    pools = [PROSE, CODE, SCRIPTS, EMOJI, COMBINING, SPACES, SPECIALS, CONTRACTIONS,
             [str(i) for i in range(1000)], ["<SUMMARY>", "</CONCLUSION>", "(A)", "B.", "?", "!!", "...", "—"]]
    chars = "".join(PROSE + CODE + SCRIPTS + EMOJI + COMBINING + SPACES + SPECIALS)
    while len(out) < 2200:
        kind = rng.random()
        if kind < 0.5:
            parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 8))]
            sep = rng.choice(["", " ", "\n", "  ", "\t"])
            out.append(sep.join(parts))
        else:
            out.append("".join(rng.choice(chars) for _ in range(rng.randint(1, 120))))
    return out


def load(path):
    """The reference tokenizer, with <|image|> added at the next id (128256) when the file lacks it, as
    Llama-3.2-Vision's own tokenizer.json has it."""
    tok = Tokenizer.from_file(path)
    if tok.token_to_id("<|image|>") is None:
        tok.add_special_tokens(["<|image|>"])
    return tok


def main():
    cmd = sys.argv[1]
    if cmd == "corpus":
        tok = load(sys.argv[2])
        with open(sys.argv[3], "w", encoding="utf-8") as f:
            for text in corpus():
                tok.encode_special_tokens = False
                special = tok.encode(text, add_special_tokens=False).ids
                tok.encode_special_tokens = True
                plain = tok.encode(text, add_special_tokens=False).ids
                f.write(json.dumps({"text": text, "special": special, "plain": plain}, ensure_ascii=False) + "\n")
    elif cmd == "tiktoken":
        data = json.load(open(sys.argv[2], encoding="utf-8"))
        back = {v: k for k, v in bytes_to_unicode().items()}
        with open(sys.argv[3], "w") as f:
            for token, rank in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1]):
                raw = bytes(back[ch] for ch in token)
                f.write(base64.b64encode(raw).decode() + " " + str(rank) + "\n")
    elif cmd == "encode":
        tok = load(sys.argv[2])
        for line in sys.stdin:
            print(json.dumps(tok.encode(json.loads(line), add_special_tokens=False).ids))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
