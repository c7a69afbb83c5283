"""``lowvram-r1 ui``: the web panel on http://127.0.0.1:7860 (launch runs, watch them live, compare, try).
"""

from __future__ import annotations

def cmd_ui(args: argparse.Namespace) -> int:
    from lowvram_r1.ui.serve import cmd_ui as serve

    return serve(args)
