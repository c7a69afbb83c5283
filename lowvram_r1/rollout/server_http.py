"""HTTP to a vLLM server with a deadline on every call: a server that stalls, trickles bytes or answers without end
cannot hang training, and a stop request (the run's STOP file, SIGTERM) ends a wait the server never answers.

    link = ServerLink("http://127.0.0.1:8000", timeout=600, should_stop=session.should_stop)
    link.fetch_json("GET", "/v1/models")     # the answer as JSON, or ServerError naming the server and what to check
    status, text, kind = link.call("GET", "/health", deadline=5)      # any status; TimeoutError past the deadline

Each call runs in the calling thread; a watchdog thread shuts the call's socket down when the call's deadline passes
(connecting, sending, waiting for the first byte and reading the last all count, so a ``/health`` that trickles a
byte a second still ends on time) or when ``should_stop`` has said yes for ``stop_grace`` seconds (a healthy server
finishes the call within the grace, and the run stops at the step boundary as usual; a stalled one is given up:
:class:`ServerStopped`, a ``KeyboardInterrupt``, so the run ends "stopped"). Answers are read up to ``max_bytes``.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 256 << 20  # a generation batch's answer with log-probabilities stays far below this
POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 60.0  # a healthy server finishes a batch within this; a stalled one is left
RETRIES = 3


class ServerStopped(KeyboardInterrupt):
    """A stop request (STOP file or SIGTERM) arrived while the vLLM server had not answered."""


class ServerError(RuntimeError):
    """The vLLM server did not answer in time, or answered something that is not what vLLM answers."""


class ServerLink:
    """Calls to one server, each with a deadline (see the module docstring)."""

    def __init__(
        self,
        url: str,
        timeout: float = 600.0,
        should_stop: Callable[[], bool] | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.should_stop = should_stop
        self.stop_grace = stop_grace
        self.max_bytes = max_bytes

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        deadline: float | None = None,
        max_bytes: int | None = None,
    ) -> tuple[int, str, str]:
        """(status, answer text, content type) of ``method path`` (a JSON body when given). Raises ``TimeoutError``
        past the deadline, ``ServerStopped`` on a stop request, ``ServerError`` on an oversized answer, ``OSError`` /
        ``http.client.HTTPException`` when the server cannot be reached or breaks the protocol."""
        limit = self.timeout if deadline is None else deadline
        cap = self.max_bytes if max_bytes is None else max_bytes
        target = path if path.startswith(("http://", "https://")) else f"{self.url}{path}"
        parts = urlsplit(target)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        end = time.monotonic() + limit
        connection = kind(parts.hostname or "", parts.port, timeout=max(0.05, min(limit, 30.0)))
        why: list[str] = []
        done = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(connection, end, done, why), daemon=True)
        watchdog.start()
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.connect()  # within min(deadline, 30 s); then reads wait as long as the watchdog allows
            connection.sock.settimeout(limit + 5.0)
            where = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(method, where, body=data, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            chunks, size = [], 0
            while chunk := answer.read(min(1 << 16, cap + 1 - size)):
                size += len(chunk)
                if size > cap:
                    raise ServerError(
                        f"the vLLM server at {self.url} answered {method} {parts.path} with more than {cap >> 20} MiB: "
                        "is this URL really a vLLM server (--vllm-server-url)?"
                    )
                chunks.append(chunk)
            done.set()
            kind_of = answer.getheader("Content-Type", "") or ""
            result = answer.status, b"".join(chunks).decode("utf-8", errors="replace"), kind_of
        except (OSError, http.client.HTTPException) as error:
            done.set()
            watchdog.join()
            if not why:
                raise error
        finally:
            done.set()
            connection.close()
        watchdog.join()
        if why == ["stop"]:  # a shut socket may read as a clean end: the watchdog's word decides
            raise ServerStopped(f"stopped while waiting for the vLLM server at {self.url} ({method} {parts.path})")
        if why == ["deadline"]:
            raise TimeoutError(f"{method} {target} took more than {limit:g} s")
        return result

    def _watch(self, connection: http.client.HTTPConnection, end: float, done: threading.Event, why: list) -> None:
        stop_seen: float | None = None
        while not done.wait(POLL_SECONDS):
            now = time.monotonic()
            if stop_seen is None and self.should_stop is not None and self.should_stop():
                stop_seen = now
            if stop_seen is not None and now - stop_seen >= self.stop_grace:
                why.append("stop")
            elif now >= end:
                why.append("deadline")
            else:
                continue
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read in the calling thread
                except OSError:
                    pass
            return

    def fetch_json(self, method: str, path: str, body: Any = None, *, deadline: float | None = None) -> Any:
        """The JSON answer of a call that must succeed; ``ServerError`` naming the server and what to check."""
        text, kind = self.fetch(method, path, body, deadline=deadline)
        return parse_json(text, kind, self.url, f"{method} {path}")

    def fetch(self, method: str, path: str, body: Any = None, *, deadline: float | None = None) -> tuple[str, str]:
        """(text, content type) of a call that must answer 200; ``ServerError`` naming the server otherwise. Like
        TRL's client, a refused connection or a 500/502/503 is tried again (three more times, after 1, 2, 4 s), all
        within the one deadline."""
        limit = self.timeout if deadline is None else deadline
        end = time.monotonic() + limit
        attempt = 0
        while True:
            last = attempt == RETRIES
            try:
                status, text, kind = self.call(method, path, body, deadline=max(0.0, end - time.monotonic()))
            except TimeoutError:
                raise ServerError(
                    f"the vLLM server at {self.url} did not answer {method} {path} within {limit:g} s "
                    "(--vllm-request-timeout): check that it is running and not stalled (its log), or raise the "
                    "timeout"
                ) from None
            except (OSError, http.client.HTTPException) as error:
                if last or not isinstance(error, ConnectionError) or end - time.monotonic() < 2**attempt:
                    raise ServerError(
                        f"the vLLM server at {self.url} cannot be reached ({method} {path}: {error}): is it still "
                        "running, at this address (--vllm-server-url)?"
                    ) from None
            else:
                if status == 200:
                    return text, kind
                if last or status not in (500, 502, 503) or end - time.monotonic() < 2**attempt:
                    raise ServerError(
                        f"the vLLM server at {self.url} answered {method} {path} with {status}: {text[:500]}"
                    )
            time.sleep(2**attempt)
            attempt += 1


def parse_json(text: str, content_type: str, url: str, request: str) -> Any:
    """``text`` as JSON, or a ``ServerError`` saying that the URL does not look like a vLLM server."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        shown = " ".join(text[:120].split())
        raise ServerError(
            f"the server at {url} answered {request} with {content_type or 'no content type'} that is not JSON "
            f"({shown!r}...): is --vllm-server-url the vLLM server's own address (host and port), not a proxy or "
            "another web page?"
        ) from None
