"""The "image" the test runtime runs: a real HTTP process that reports its Cloud Run identity.

GET / answers the K_* variables and every APP_* variable, so tests can check what a revision received.
"""

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(("K_", "APP_"))}
        data = json.dumps(env).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return


# A slow start lets tests watch an operation that is still pending.
time.sleep(float(os.environ.get("ENVSERVER_START_DELAY", "0")))
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
