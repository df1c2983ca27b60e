"""Real HTTP(S) servers on 127.0.0.1 for the script tests: a function answers each GET."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]  # the project

from components.routes import COLOR_HEADER

Answer = tuple[int, Mapping[str, str], bytes]
Handler = Callable[[str, Mapping[str, str]], Answer]  # (path, request headers) -> answer


def ready(color: Optional[str], value: object = True) -> Answer:
    """The tutorial's readiness answer, as the given color (None: without the color header)."""
    return answer(200, color, json.dumps({"ready": value}).encode(), "application/json")


def healthy(color: str = "green", seen: Optional[list] = None) -> Handler:
    """An app of this color that is ready and answers 200 everywhere; records (path, Cookie) in `seen`."""
    def handle(path: str, headers: Mapping[str, str]) -> Answer:
        if seen is not None:
            seen.append((path, headers.get("Cookie")))
        return ready(color) if path == "/ready" else answer(200, color)
    return handle


def answer(status: int, color: Optional[str], body: bytes = b"ok", kind: str = "text/plain") -> Answer:
    headers = {"Content-Type": kind}
    if color:
        headers[COLOR_HEADER] = color
    return status, headers, body


@contextmanager
def serve(handler: Handler, tls: Optional[tuple[Path, Path]] = None) -> Iterator[str]:
    """Serve on a free port until the block ends; yields the base URL."""

    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            status, headers, body = handler(self.path, dict(self.headers))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up early is no error
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handle)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    stopping = threading.Event()

    def serve_until_stopped() -> None:
        while not stopping.is_set():
            server.handle_request()  # blocks until a connection comes

    thread = threading.Thread(target=serve_until_stopped, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}"
    finally:
        stopping.set()
        wake(server.server_port)
        thread.join()
        server.server_close()


def wake(port: int) -> None:
    """Connect once, so that a server blocked waiting for a connection sees at once that it is to stop
    (serve_forever's polling made every test that served wait 25 ms on average at its end)."""
    socket.create_connection(("127.0.0.1", port)).close()


RawHandler = Callable[[socket.socket, bytes, threading.Event], None]  # (connection, request head, stop)


@contextmanager
def serve_raw(respond: RawHandler) -> Iterator[str]:
    """A TCP server on 127.0.0.1 for answers no HTTP server would send (a trickle, a bomb, garbage, silence):
    it reads each request's head, then `respond` writes what it likes; `stop` is set when the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def one(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                respond(connection, head, stop)
            except OSError:  # the client hung up: what the tests provoke
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        wake(listener.getsockname()[1])
        thread.join()
        listener.close()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl; (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


# --- raw answers that never complete, for the deadline tests (serve_raw) ------------------------------------

def trickling(head: bytes, every: float = 0.05) -> RawHandler:
    """Sends `head`, then one byte every `every` seconds until the block ends: no read ever waits long,
    yet the answer never completes."""
    def respond(connection: socket.socket, request: bytes, stop: threading.Event) -> None:
        connection.sendall(head)
        while not stop.wait(every):
            connection.sendall(b"a")
    return respond


def hanging(connection: socket.socket, request: bytes, stop: threading.Event) -> None:
    """Accepts the request and never answers."""
    stop.wait(30)


def endless(connection: socket.socket, request: bytes, stop: threading.Event) -> None:
    """A chunked 200 whose body never ends, 1 KiB every 10 ms: under any cap for minutes, so only a deadline ends it."""
    connection.sendall(f"HTTP/1.1 200 OK\r\n{COLOR_HEADER}: green\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    while not stop.wait(0.01):
        connection.sendall(chunk)
