"""What the stand-in engines of the tests share: the `vllm serve` endpoints a runner reads before it
sends a request (/health, /v1/models, /version), answered as JSON."""

import json
from http.server import BaseHTTPRequestHandler


class StandInHandler(BaseHTTPRequestHandler):
    served_model = "stand-in"
    max_model_len = 2048
    version = "0.0.0-stand-in"
    healthy = True

    def _json(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self._json(200 if self.healthy else 503, {})
        elif self.path == "/v1/models":
            self._json(200, {"data": [{"id": self.served_model, "max_model_len": self.max_model_len}]})
        elif self.path == "/version":
            self._json(200, {"version": self.version})
        else:
            self._json(404, {})

    def log_message(self, *args):
        pass
