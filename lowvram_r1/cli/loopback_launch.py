"""``python -m lowvram_r1.cli.loopback_launch [--gloo-loopback] MODULE ARGS...``: run a launcher module
(``torch.distributed.run``, or ``accelerate.commands.launch``, which runs torchrun in its own process) as
``python -m MODULE ARGS`` would, except that every c10d ``TCPStore`` server it hosts for a loopback address listens
on 127.0.0.1 alone. ``lowvram-r1 train --num-processes N`` starts its launcher this way (:mod:`.launch`).

Why: torchrun's stores (the rendezvous store, and the store its workers share) take no password, and a
``TCPStore`` server listens on every interface (``::``) whatever host it is given, so during a run anyone who can
reach the machine could read and write the processes' coordination keys. ``TCPStore`` also accepts a socket that
already listens (``master_listen_fd``): each loopback store the launcher creates is handed one bound to 127.0.0.1.
Stores for other hosts (a multi-machine accelerate config) are left as they are. ``--gloo-loopback`` also sets
``GLOO_SOCKET_IFNAME=lo`` (unless set) on Linux, so the gloo process group's own listeners stay on loopback too.
The module runs in this process: its pid stays the one ``train`` had (see :mod:`.launch`).
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
from pathlib import Path
from typing import Any

from lowvram_r1.ui.serve import is_loopback  # the panel's rule: one owner for what counts as loopback

LOOPBACK = "127.0.0.1"
GLOO_LOOPBACK = "--gloo-loopback"
_STORE_ARGS = (
    "world_size",
    "is_master",
    "timeout",
    "wait_for_workers",
    "multi_tenant",
    "master_listen_fd",
    "use_libuv",
)


def loopback_listener(port: int) -> tuple[int, int]:
    """A socket listening on 127.0.0.1:``port`` (0: a free port): its file descriptor (handed over) and its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(socket.SOMAXCONN)
    bound = sock.getsockname()[1]
    return sock.detach(), bound


def install() -> type:
    """Make ``torch.distributed.TCPStore`` (and the names torch's launchers imported it under) bind loopback."""
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend, static_tcp_rendezvous

    base = dist.TCPStore

    class LoopbackTCPStore(base):  # type: ignore[misc, valid-type]
        """A ``TCPStore`` whose server, for a loopback host, listens on 127.0.0.1 only."""

        def __init__(self, host_name: str, port: int = 0, *args: Any, **kwargs: Any) -> None:
            kwargs.update(zip(_STORE_ARGS, args, strict=False))
            if kwargs.get("is_master") and kwargs.get("master_listen_fd") is None and is_loopback(host_name):
                kwargs["master_listen_fd"], port = loopback_listener(int(port or 0))  # the store owns it now
                host_name = LOOPBACK
            super().__init__(host_name, port, **kwargs)

    for module in (dist, c10d_rendezvous_backend, static_tcp_rendezvous):
        module.TCPStore = LoopbackTCPStore
    return LoopbackTCPStore


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [GLOO_LOOPBACK]:
        args = args[1:]
        if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if not args:
        raise SystemExit("usage: python -m lowvram_r1.cli.loopback_launch [--gloo-loopback] MODULE ARGS...")
    install()
    sys.argv = [args[0], *args[1:]]
    runpy.run_module(args[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
