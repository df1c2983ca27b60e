"""One GET through the gateway on urllib3, never past its check's deadline, never more than a cap of body.

urllib3 gives the connection pool, the timeouts, TLS, and decompression that `HTTPResponse.read(amt)` bounds
to `amt` bytes (a bomb stops at the cap). What no library gives is a wall-clock deadline on a whole answer:
a read timeout is per socket read, which a server sending a byte at a time never trips. So each check has
a Watchdog that shuts its sockets at the check's deadline, and a verdict comes by then whatever the server does.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import urlsplit

from urllib3 import HTTPConnectionPool, HTTPResponse, HTTPSConnectionPool, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import DecodeError, HTTPError, InsecureRequestWarning
from urllib3.exceptions import SSLError as TLSError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from ..cli import printable

MAX_REQUEST_SECONDS = 10.0  # one connect or read; the check's deadline bounds the whole answer
USER_AGENT = "bluegreen-smoke-test"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json, */*", "Accept-Encoding": "gzip, deflate"}
ENCODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})  # what Accept-Encoding asks for
READ_CHUNK = 65536


class Wait(Exception):
    """Not ready yet: try again until the timeout runs out."""


class Late(Wait):
    """No complete answer by the check's deadline."""


class Wrong(Exception):
    """A definite wrong answer: fail now."""


class WrongColor(Wrong):
    """Answered by another color, or not through our routes: definite once the route has settled."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes


class Watchdog:
    """Shuts every socket of one check at the check's deadline, whatever a request is doing (sending, waiting
    for headers, reading the body), so that a trickle cannot stretch an answer past it. A TLS handshake needs
    none: it is one socket call, which the connect timeout bounds as a whole."""

    def __init__(self, deadline: float):
        self.lock = threading.Lock()
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()  # alive while a response reads from one
        self.fired = False
        self.timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.fire)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)
            fired = self.fired
        if fired:  # connected after the deadline (or a stop): no answer may start now
            _shut(sock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            sockets = list(self.sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        self.timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the OS socket, also under TLS: a blocked read returns
    except OSError:  # closed already
        pass


class _Watched:
    """A urllib3 connection that gives its socket, once connected, to its check's watchdog (the socket object
    itself: http.client drops the connection's reference on `Connection: close` while the body is still read)."""

    def __init__(self, *args, watchdog: Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self.watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self.watchdog.watch(self.sock)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


@dataclass(frozen=True)
class Target:
    https: bool
    host: str
    port: Optional[int]
    prefix: str  # the URL's path, without a trailing slash
    verify: bool
    ca_certs: Optional[str] = None  # a CA bundle file or directory (verified https only)
    ca_cert_dir: Optional[str] = None

    @classmethod
    def of(cls, url: str, verify: bool) -> "Target":
        parts = urlsplit(url)
        https = parts.scheme == "https"
        bundle = ca_bundle(url) if https and verify else None
        directory = bundle is not None and os.path.isdir(bundle)
        return cls(https, parts.hostname or "", parts.port, parts.path.rstrip("/"), verify,
                   None if directory else bundle, bundle if directory else None)

    def pool(self, watchdog: Watchdog) -> HTTPConnectionPool:
        """A pool of one keep-alive connection for one check, whose requests go one after the other."""
        common = {"maxsize": 1, "block": False, "retries": False, "watchdog": watchdog}
        if not self.https:
            return _HTTPPool(self.host, self.port, **common)
        if self.verify:
            return _HTTPSPool(self.host, self.port, cert_reqs="CERT_REQUIRED", ca_certs=self.ca_certs,
                              ca_cert_dir=self.ca_cert_dir, **common)
        # --insecure was asked for and the run's first line says so: urllib3's warning per request would repeat it
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
        return _HTTPSPool(self.host, self.port, cert_reqs="CERT_NONE", assert_hostname=False, **common)


def ca_bundle(url: str) -> str:
    """The CA bundle requests verifies `url` with: requests' own lookup ($REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE),
    else certifi's bundle."""
    import requests  # only a verified https run needs it: every other run skips the import

    with requests.Session() as session:
        verify = session.merge_environment_settings(url, {}, None, True, None)["verify"]
    return verify if isinstance(verify, str) else requests.certs.where()


def get(pool: HTTPConnectionPool, target: Target, path: str, headers: Mapping[str, str], deadline: float,
        read_body: bool, max_body: int, watchdog: Watchdog) -> Answer:
    """GET base+path on the check's pool: the answer, or Wait/Late/Wrong. Never past `deadline` (the watchdog's),
    never more than `max_body` bytes of body, on the wire or decompressed. Redirects are never followed."""
    per_operation = max(0.05, min(MAX_REQUEST_SECONDS, deadline - time.monotonic()))
    response: Optional[HTTPResponse] = None
    read_to_the_end = False
    try:
        if watchdog.fired:
            raise TimeoutError("deadline")
        response = pool.urlopen("GET", target.prefix + path, headers={**HEADERS, **headers}, retries=False,
                                redirect=False, preload_content=False,
                                timeout=Timeout(connect=per_operation, read=per_operation))
        body = read_capped(response, max_body) if read_body else b""
        if watchdog.fired:  # the socket was shut at the deadline: what was read so far may look complete, it is not
            raise TimeoutError("deadline")
        read_to_the_end = read_body
        return Answer(response.status, response.reason or "", response.headers, body)
    except Exception as error:  # the socket, TLS, or a malformed answer; or the deadline cut it short
        if watchdog.fired or time.monotonic() >= deadline:  # the watchdog, or a socket timeout a hair before it
            raise Late("no complete answer in time (the server is slow, or sends its answer a little at a "
                       "time)") from None
        if isinstance(error, (Wait, Wrong)):
            raise
        raise classify(error, target) from None
    finally:
        if response is not None:
            if not read_to_the_end:  # an unread or refused body: its connection cannot serve the next request
                response.close()
            response.release_conn()


def read_capped(response: HTTPResponse, cap: int) -> bytes:
    """The body, decompressed, at most `cap` bytes of it both on the wire and after decompression."""
    declared = response.length_remaining  # Content-Length, if the answer has one
    if declared is not None and declared > cap:
        raise Wrong(f"the body is {declared} bytes, over the {cap}-byte cap (--max-body)")
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ENCODINGS:  # urllib3 would pass it through undecoded
        raise Wrong(f"Content-Encoding {printable(encoding, 40)} is not supported (the request asks for gzip "
                    "or deflate)")
    body = bytearray()
    while True:
        try:
            chunk = response.read(min(READ_CHUNK, cap + 1 - len(body)))  # never decompresses more than asked
        except DecodeError:
            raise Wrong(f"the {encoding} body cannot be decompressed") from None
        if not chunk:
            return bytes(body)
        body += chunk
        if response.tell() > cap:  # bytes on the wire
            raise Wrong(f"the body is over the {cap}-byte cap (--max-body)")
        if len(body) > cap:
            raise Wrong(f"the body is over the {cap}-byte cap (--max-body) once decompressed ({encoding}, "
                        f"{response.tell()} bytes sent)")


def _root(error: BaseException) -> BaseException:
    """The OS, TLS or HTTP error under urllib3's wrappers (ProtocolError, SSLError, NewConnectionError...)."""
    while isinstance(error, HTTPError):
        inner = next((arg for arg in error.args if isinstance(arg, BaseException)), None) or error.__cause__
        if inner is None:
            return error
        error = inner
    return error


def classify(error: Exception, target: Target) -> Exception:
    """A connection error as Wait (may pass) or Wrong (definite), in a few words."""
    cause = _root(error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return Wrong(f"TLS failed (certificate verify failed: {printable(cause.verify_message or str(cause))}); "
                     "--insecure skips verification")
    if isinstance(cause, ssl.SSLError):
        return Wrong(f"TLS failed ({printable(cause.reason or str(cause))}); is the URL's scheme right?")
    if isinstance(cause, TLSError):
        return Wrong(f"TLS failed ({printable(str(cause), 60)}); is the URL's scheme right?")
    if isinstance(cause, ConnectionRefusedError):
        return Wait("Connection refused")
    if isinstance(cause, (TimeoutError, Urllib3Timeout)):
        return Wait("timed out")
    if isinstance(cause, socket.gaierror):
        return Wait(f"cannot resolve {printable(target.host)} ({printable(cause.strerror or str(cause))})")
    if isinstance(cause, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return Wait("the connection closed before a complete answer")
    if isinstance(cause, http.client.IncompleteRead):  # urllib3's counts bytes, http.client's holds them
        partial = cause.partial if isinstance(cause.partial, int) else len(cause.partial)
        total = f" of {partial + cause.expected}" if isinstance(cause.expected, int) and cause.expected else ""
        return Wait(f"the answer was cut short ({partial}{total} bytes of the body)")
    if isinstance(cause, (http.client.HTTPException, HTTPError)):  # a bad status line, a header too long, too many
        return Wrong(f"not a valid HTTP answer ({type(cause).__name__}: {printable(str(cause), 60)})")
    if isinstance(cause, OSError):
        return Wait(printable(cause.strerror or str(cause) or type(cause).__name__))
    return Wrong(f"unexpected {type(cause).__name__}: {printable(str(cause), 60)}")
