#!/usr/bin/env python3
"""A stub server for the http scorer and judge tests, on a free loopback port (written to PORT_FILE).

Usage: stub_http.py PORT_FILE [REQUEST_LOG]

Reward protocol (the http scorer):
POST /score       {"candidates": [...]} -> {"scores": [len(c) for each candidate]}
POST /flaky       503 on every other request, else as /score
POST /malformed   a body that is not JSON
POST /wrong-count one score too few
POST /slow        answers after 10 s

OpenAI chat completions (the openai judge), MODE/v1/chat/completions with MODE one of:
  ok        needs "Authorization: Bearer sk-test-secret"; replies by the prompt's kind: the MM-Vet grader
            "0.8", the MathVista extractor "7", the yes/no matcher "Yes", anything else (the MCQ matcher) "B"
  flaky     as ok, but 503 on every other request
  malformed 200 with a body that is not a chat completion
  slow      as ok after 10 s
Each chat request is appended to REQUEST_LOG as one JSON line: path, model, temperature, max_tokens and whether
the expected Authorization header came with it.
anything else     404
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"flaky": 0, "chat_flaky": 0}
LOG = {"path": None}
KEY = "sk-test-secret"


def judge_reply(prompt):
    if "Correctness" in prompt:
        return "0.8"
    if "Extracted answer:" in prompt:
        return "7"
    if "Yes, No or Unknown" in prompt:
        return "Yes"
    return "B"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chat(self, mode, request):
        authorized = self.headers.get("Authorization", "") == "Bearer " + KEY
        if LOG["path"]:
            with open(LOG["path"], "a") as f:
                f.write(json.dumps({"path": self.path, "model": request.get("model"),
                                    "temperature": request.get("temperature"),
                                    "max_tokens": request.get("max_tokens"), "authorized": authorized}) + "\n")
        if not authorized:
            self.reply(401, json.dumps({"error": {"message": "Incorrect API key provided"}}))
            return
        if mode == "malformed":
            self.reply(200, "<html>gateway says hello</html>")
            return
        if mode == "flaky":
            STATE["chat_flaky"] += 1
            if STATE["chat_flaky"] % 2 == 1:
                self.reply(503, json.dumps({"error": "overloaded"}))
                return
        if mode == "slow":
            time.sleep(10)
        prompt = request["messages"][0]["content"]
        self.reply(200, json.dumps({
            "id": "chatcmpl-stub", "object": "chat.completion", "model": request.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " " + judge_reply(prompt) + "\n"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 1}}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        parts = self.path.split("/")
        if len(parts) == 5 and parts[2:] == ["v1", "chat", "completions"] and parts[1] in ("ok", "flaky", "malformed", "slow"):
            self.chat(parts[1], request)
            return
        candidates = request.get("candidates", [])
        scores = [float(len(c)) for c in candidates]
        if self.path == "/score":
            self.reply(200, json.dumps({"scores": scores}))
        elif self.path == "/flaky":
            STATE["flaky"] += 1
            if STATE["flaky"] % 2 == 1:
                self.reply(503, json.dumps({"error": "busy"}))
            else:
                self.reply(200, json.dumps({"scores": scores}))
        elif self.path == "/malformed":
            self.reply(200, "scores: 1, 2")
        elif self.path == "/wrong-count":
            self.reply(200, json.dumps({"scores": scores[:-1]}))
        elif self.path == "/slow":
            time.sleep(10)
            self.reply(200, json.dumps({"scores": scores}))
        else:
            self.reply(404, json.dumps({"error": "no such endpoint"}))


def main():
    if len(sys.argv) > 2:
        LOG["path"] = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]) + "\n")
    import os
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
