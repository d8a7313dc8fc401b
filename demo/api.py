"""An HTTP API on 127.0.0.1:8768 backed by the demo database.

`GET /` counts a visit in the database; `GET /health` answers 200 only while the
database answers, which is what the api's health check asks.
"""

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8768


def db(command: str) -> str:
    with socket.create_connection(("127.0.0.1", 8767), timeout=1) as conn:
        conn.sendall(f"{command}\n".encode())
        return conn.recv(256).decode().strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            if self.path == "/health":
                status, body = (200, "ok") if db("PING") == "PONG" else (503, "db?")
            else:
                status, body = 200, f"hello, visit {db('INCR visits')}"
        except OSError as exc:
            status, body = 503, f"database unavailable: {exc}"
        payload = f"{body}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.path != "/health":  # checks every few seconds would drown the log
            print(f"{self.address_string()} {format % args}", flush=True)


print(f"serving on http://127.0.0.1:{PORT}/", flush=True)
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
