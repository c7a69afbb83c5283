"""``lowvram-r1 ui``: the web panel on http://127.0.0.1:7860 (launch runs, watch them live, compare, try).

lowvram-r1 ui [--host 127.0.0.1] [--port 7860]      # options: lowvram_r1/ui/serve.py
"""

from __future__ import annotations

import argparse


def add(subparsers: argparse._SubParsersAction) -> None:
    from lowvram_r1.ui.serve import add_ui_arguments

    add_ui_arguments(subparsers.add_parser("ui", help="the web panel: launch runs, watch them live, compare, try"))


def run(args: argparse.Namespace) -> int:
    from lowvram_r1.ui.serve import cmd_ui as serve

    return serve(args)
