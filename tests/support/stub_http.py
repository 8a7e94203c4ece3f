#!/usr/bin/env python3
"""A stub reward server for the http scorer tests, on a free loopback port (written to PORT_FILE).

POST /score       {"candidates": [...]} -> {"scores": [len(c) for each candidate]}
POST /flaky       503 on every other request, else as /score
POST /malformed   a body that is not JSON
POST /wrong-count one score too few
POST /slow        answers after 10 s
anything else     404
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"flaky": 0}


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

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]) + "\n")
    import os
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
