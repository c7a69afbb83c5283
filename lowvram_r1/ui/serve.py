"""``lowvram-r1 ui`` / ``python app.py``: serve the panel, safely by default.

    lowvram-r1 ui                                   # http://127.0.0.1:7860, this machine only
    lowvram-r1 ui --host 0.0.0.0 --auth me:secret   # reachable from the network: a password is required
    LOWVRAM_R1_UI_AUTH=me:secret lowvram-r1 ui --share

The panel starts processes on this machine, so anything beyond loopback (another host, ``--share``'s public link)
is refused without ``--auth`` or the ``LOWVRAM_R1_UI_AUTH`` environment variable. With a password, failed logins
are slowed and then locked out, and the login page describes no API (``http_guard.py``); the panel starts at most
``--max-runs`` trainers at once (default: one per GPU, one on a CPU-only machine).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from lowvram_r1.recipes import PACKAGE_RECIPES

AUTH_ENV = "LOWVRAM_R1_UI_AUTH"


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: local only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs --auth)")
    parser.add_argument("--auth", help=f"USER:PASSWORD required to open the panel (or set {AUTH_ENV})")
    parser.add_argument("--runs-dir", default="runs", help="folder holding run directories (default: runs)")
    parser.add_argument(
        "--configs-dir", default=None, help="folder of recipe YAMLs (default: the recipes shipped in the package)"
    )
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="SPEC",
        help="offer your own task in the form (./my_task.py:TASK or module:TASK; repeatable)",
    )
    parser.add_argument(
        "--max-runs",
        type=_positive_int,
        default=None,
        help="most runs training at once, started from the panel (default: one per GPU, one on a CPU-only machine)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1024, got {text[:20]!r}")
    return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere: treat it as exposed


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` -> (user, password); raises ``ValueError`` on a malformed value."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth must be USER:PASSWORD with both parts non-empty")
    return user, password


def check_exposure(host: str, share: bool, auth: tuple[str, str] | None) -> None:
    """Refuse to serve beyond this machine without a password: the panel can start processes here."""
    if auth:
        return
    if share:
        raise ValueError(
            f"--share publishes the panel on a public link, and the panel starts processes on this machine: "
            f"add --auth USER:PASSWORD (or set {AUTH_ENV})"
        )
    if not is_loopback(host):
        raise ValueError(
            f"--host {host} makes the panel reachable from other machines, and the panel starts processes on this "
            f"machine: add --auth USER:PASSWORD (or set {AUTH_ENV}), or keep the default --host 127.0.0.1"
        )


def cmd_ui(args: argparse.Namespace) -> int:
    """Validate exposure, then build and serve the panel (blocks until interrupted)."""
    auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    check_exposure(args.host, args.share, auth)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry calls from a tool that may run offline
    try:
        import gradio  # noqa: F401 - only to say what to install
    except ImportError:
        raise ValueError("the panel needs gradio: pip install -e '.[ui]'") from None
    from lowvram_r1.ui import user_tasks
    from lowvram_r1.ui.app import build_app, launch_kwargs

    user_tasks.register(args.task)  # loaded and checked now; the form offers them (and nothing typed in it)
    from lowvram_r1.ui.http_guard import launch_options

    configs = Path(args.configs_dir) if args.configs_dir else PACKAGE_RECIPES
    app = build_app(Path(args.runs_dir), configs, max_runs=args.max_runs)
    print(f"lowvram-r1 panel: http://{args.host}:{args.port}  (runs in {args.runs_dir}/)", flush=True)
    app.launch(
        server_name=args.host, server_port=args.port, share=args.share, **launch_options(auth), **launch_kwargs()
    )
    return 0
