"""What the served panel adds to Gradio's own HTTP handling: failed logins are slowed and then locked out, uploads
are capped, and the login page a visitor sees before signing in describes no API.

    options = launch_options(("me", "secret"))     # auth, max_file_size, app_kwargs (the middleware), ssr_mode
    app.launch(server_name="0.0.0.0", **options)

Gradio answers every ``POST /login`` at once and embeds the app's API description (every endpoint, its
parameters) in the page it serves for login; the panel has no file input, yet Gradio accepts any upload size.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

# The panel has no file input: nothing legitimate uploads to it (Gradio's default is no limit at all).
MAX_FILE_SIZE = "64kb"
# The API description of an app with no endpoints, in the shape Gradio's page script reads.
EMPTY_API_INFO = b'{"named_endpoints":{},"unnamed_endpoints":{}}'
_API_INFO = re.compile(rb"(<script>window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)
_LOGIN_PAGE = b'"auth_required":true'  # in the config Gradio embeds when it serves the login form instead of the app


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # any string a login form can send, lone surrogates included


class LoginThrottle:
    """``--auth``'s password check for Gradio: each failed login is answered only after ``delay_s``, and
    ``max_failures`` failures within ``window_s`` lock every login out for ``lockout_s`` (answered 429, the right
    password included: a guesser learns nothing while locked out). One panel has one account, so the count is global;
    behind ``--share`` every request comes from the tunnel's address anyway.

    Pass :attr:`check` (a coroutine function: Gradio awaits it in its event loop, so the delay blocks no one else).
    """

    def __init__(
        self,
        user: str,
        password: str,
        *,
        delay_s: float = 1.0,
        max_failures: int = 5,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._user, self._password = _bytes(user), _bytes(password)
        self.delay_s, self.max_failures, self.window_s, self.lockout_s = delay_s, max_failures, window_s, lockout_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._locked_until = 0.0

    async def check(self, username: str, password: str) -> bool:
        now = self._clock()
        if now < self._locked_until:
            from fastapi import HTTPException

            wait = int(self._locked_until - now) + 1
            raise HTTPException(status_code=429, detail=f"Too many failed logins: try again in {wait} s.")
        # both compared in full, whatever the first says: the time taken tells nothing about which one was wrong
        user_ok = hmac.compare_digest(_bytes(username), self._user)
        password_ok = hmac.compare_digest(_bytes(password), self._password)
        if user_ok and password_ok:
            self._failures.clear()
            return True
        # counted before the first await: concurrent attempts all see the count the ones before them left
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.max_failures:
            self._locked_until = now + self.lockout_s
            self._failures.clear()
            logger.warning(
                "%d failed panel logins within %.0f s: logins locked for %.0f s",
                self.max_failures,
                self.window_s,
                self.lockout_s,
            )
        await asyncio.sleep(self.delay_s)
        return False


class LoginPageWithoutApi:
    """ASGI middleware: in the HTML page Gradio serves to a visitor who is not signed in (the login form), the
    embedded API description is replaced by an empty one. Signed-in pages and every other response pass untouched.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def send_page(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = message  # held back until the body is complete
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                if _LOGIN_PAGE in body:
                    body = _API_INFO.sub(lambda m: m[1] + EMPTY_API_INFO + m[2], body)
                headers = [(k, v) for k, v in start.get("headers") or [] if k != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_page)


def launch_options(auth: tuple[str, str] | None, throttle: LoginThrottle | None = None) -> dict[str, Any]:
    """The ``launch()`` keywords that make Gradio serve the panel as described above."""
    from starlette.middleware import Middleware

    options: dict[str, Any] = {
        "max_file_size": MAX_FILE_SIZE,
        "app_kwargs": {"middleware": [Middleware(LoginPageWithoutApi)]},
        "ssr_mode": False,  # pages are rendered here, where the middleware sees them (not by a Node server)
    }
    if auth:
        options["auth"] = (throttle or LoginThrottle(*auth)).check
    return options
