"""A small client of Prometheus's instant-query API (`GET /api/v1/query`), with `requests`.

Every query has a wall-clock time limit and a cap on the answer's size, and every way it can go wrong
(unreachable, too slow, an HTTP error, `"status": "error"`, JSON that is not Prometheus's, a result that is
not one number, NaN or infinity) comes back as an Answer with a one-line reason: no exception leaves `query`.
An empty vector, or NaN (0/0: no requests in the window), is "no data", which the decisions weigh as
configured; everything else that is not a finite number is an error.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any, Optional

import requests

VALUE, NO_DATA, ERROR = "value", "no data", "error"
DEFAULT_TIMEOUT = 10.0  # seconds, the whole query: connect, Prometheus's evaluation, the answer
DEFAULT_MAX_BYTES = 1 << 20  # a one-number answer is a few hundred bytes
MAX_REASON = 300
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Answer:
    """What one query gave: a finite number, no data, or an error; `reason` says which in one line."""

    query: str
    kind: str
    value: Optional[float] = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == VALUE


def one_line(text: Any, limit: int = MAX_REASON) -> str:
    """Text from outside (an error from Prometheus, a body) as one printable line, cut if long."""
    line = _SPACE.sub(" ", "".join(ch if ch.isprintable() else " " for ch in str(text))).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Failed(Exception):
    """A query that went wrong; its message is the Answer's reason."""


class Prometheus:
    """Queries one Prometheus server. Holds its settings only: each query opens and closes its own connection."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES,
                 verify: Any = True):
        self.endpoint = url.rstrip("/") + "/api/v1/query"
        self.timeout, self.max_bytes, self.verify = timeout, max_bytes, verify

    def query(self, promql: str, at: Optional[float] = None) -> Answer:
        """The instant query's one number (at Unix time `at`, default now), or why there is none."""
        outcome: dict[str, Any] = {}
        opened: list[requests.Response] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome["answer"] = self._answer(promql, self._fetch(promql, at, opened))
            except _Failed as failure:
                outcome["answer"] = Answer(promql, ERROR, reason=str(failure))
            except Exception as error:  # noqa: BLE001 - the brief of this client: nothing escapes a query
                outcome["answer"] = Answer(promql, ERROR, reason=one_line(f"unexpected {type(error).__name__}: {error}"))
            finally:
                done.set()

        # A thread, so that the time limit holds in every phase, even against a server that trickles its headers.
        worker = threading.Thread(target=run, daemon=True, name="prometheus-query")
        worker.start()
        if not done.wait(self.timeout):
            for response in opened:
                _cut(response)
            if opened:
                worker.join(1.0)  # the cut socket ends the read at once
            return Answer(promql, ERROR, reason=f"Prometheus at {self.endpoint} did not answer within "
                                                f"{self.timeout:g}s")
        return outcome["answer"]

    def _fetch(self, promql: str, at: Optional[float], opened: list) -> Any:
        params = {"query": promql, "timeout": f"{max(1, int(self.timeout))}s"}  # Prometheus stops evaluating then
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            response = requests.get(self.endpoint, params=params, timeout=(min(5.0, self.timeout), self.timeout),
                                    stream=True, allow_redirects=False, verify=self.verify,
                                    headers={"Accept": "application/json"})
        except requests.exceptions.Timeout:
            raise _Failed(f"Prometheus at {self.endpoint} did not answer within {self.timeout:g}s") from None
        except requests.exceptions.RequestException as error:
            raise _Failed(f"Prometheus at {self.endpoint} is unreachable: {one_line(_cause(error), 200)}") from None
        opened.append(response)
        with response:
            body = self._body(response)
        if 300 <= response.status_code < 400:
            raise _Failed(f"Prometheus at {self.endpoint} redirected to {one_line(response.headers.get('Location'))}"
                          f": set prometheusUrl to the address it points to")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and data.get("status") == "error":
            kind = one_line(data.get("errorType", "error"), 40)
            raise _Failed(f"Prometheus refused the query (HTTP {response.status_code}, {kind}): "
                          f"{one_line(data.get('error', ''), 200)}")
        if response.status_code != 200:
            raise _Failed(f"Prometheus at {self.endpoint} answered HTTP {response.status_code} "
                          f"{one_line(response.reason, 60)}")
        if not isinstance(data, dict) or data.get("status") != "success":
            raise _Failed(f"Prometheus's answer is not its API's JSON: {one_line(body[:80].decode('utf-8', 'replace'))}")
        return data.get("data")

    def _body(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _Failed(f"Prometheus's answer is {int(declared)} bytes, over the {self.max_bytes} a query may take")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise _Failed(f"Prometheus's answer is over the {self.max_bytes} bytes a query may take")
                chunks.append(chunk)
        except requests.exceptions.RequestException as error:
            raise _Failed(f"Prometheus's answer broke off: {one_line(_cause(error), 200)}") from None
        return b"".join(chunks)

    @staticmethod
    def _answer(promql: str, data: Any) -> Answer:
        kind = data.get("resultType") if isinstance(data, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        if kind == "scalar":
            sample = result
        elif kind == "vector" and isinstance(result, list):
            if not result:
                return Answer(promql, NO_DATA, reason="the query matched no series in the window")
            if len(result) > 1:
                return Answer(promql, ERROR, reason=f"the query returned {len(result)} series, and a check needs one "
                                                    f"number: aggregate it, e.g. sum(...) or max(...)")
            sample = result[0].get("value") if isinstance(result[0], dict) else None
        else:
            return Answer(promql, ERROR, reason=f"the query's result is a {one_line(kind, 20) or 'missing type'}, "
                                                f"not one number (an instant vector of one series, or a scalar)")
        if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
            return Answer(promql, ERROR, reason=f"Prometheus's sample is not [time, \"value\"]: {one_line(sample, 80)}")
        try:
            value = float(sample[1])
        except ValueError:
            return Answer(promql, ERROR, reason=f"the value {one_line(sample[1], 40)!r} is not a number")
        if math.isnan(value):
            return Answer(promql, NO_DATA, reason="the value is NaN: no requests in the window (0/0)")
        if math.isinf(value):
            return Answer(promql, ERROR, reason=f"the value is {sample[1]}, not a finite number")
        return Answer(promql, VALUE, value=value)


def _cut(response: requests.Response) -> None:
    """Shut the socket of a body still being read. Not response.close(): that waits for the reader's buffer lock,
    which a server trickling its body holds for as long as it likes."""
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the read has ended


def _cause(error: BaseException) -> str:
    """The innermost reason of a requests error, without the query-laden URL its message repeats."""
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+|certificate verify failed[^'\")]*|Read timed out|"
                      r"Connection aborted|Connection reset by peer|RemoteDisconnected[^'\")]*", text)
    return match.group(0) if match else type(error).__name__
