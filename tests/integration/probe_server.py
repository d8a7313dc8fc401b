"""A tiny server for health-check tests: `probe_server.py PORT MODE`.

MODE is an HTTP status to answer every request with (`200`, `503`), `hang` to accept
connections and never answer, or `tcp` to accept and close.
"""

import socket
import sys
import time

port, mode = int(sys.argv[1]), sys.argv[2]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
print(f"listening on {port} ({mode})", flush=True)
held = []
while True:
    conn, _ = server.accept()
    if mode == "hang":
        held.append(conn)  # never answered, never closed
        continue
    if mode != "tcp":
        conn.recv(65536)
        body = b"ok\n"
        head = f"HTTP/1.1 {mode} Status\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode() + body)
    conn.close()
    time.sleep(0)
