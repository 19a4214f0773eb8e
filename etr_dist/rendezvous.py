"""Rendezvous stores for torch.distributed groups: the host binds its port first and keeps it until everyone joins.

Picking a free port, releasing it and letting the store bind it later is a race (another process may take the
port in between); so the host binds a listening socket on its node's own address (not every interface) and
hands that socket to its TCPStore.
"""

from __future__ import annotations

import datetime
import socket

import torch.distributed as dist


class HeldPort:
    """A listening socket on `address`, held from the moment its port is announced until the store takes it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        self._socket.bind((address, 0))
        self._socket.listen(128)
        self.port: int = self._socket.getsockname()[1]

    def host_store(self, world_size: int, timeout_s: float) -> dist.TCPStore:
        """The TCPStore server on the held socket (the socket is the store's from now on)."""
        return dist.TCPStore(
            self.address,
            self.port,
            world_size,
            True,
            datetime.timedelta(seconds=timeout_s),
            wait_for_workers=False,
            master_listen_fd=self._socket.fileno(),
        )


def join_store(
    address: str, port: int, world_size: int, timeout_s: float, held: HeldPort | None = None
) -> dist.TCPStore:
    """The host (which holds the port) serves the store; every other member connects to it."""
    if held is not None:
        return held.host_store(world_size, timeout_s)
    return dist.TCPStore(address, port, world_size, False, datetime.timedelta(seconds=timeout_s))
