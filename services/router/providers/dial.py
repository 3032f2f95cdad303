"""Opening the TCP socket to an upstream (or to its proxy): Happy Eyeballs.

RFC 8305 in short: resolve the name, interleave the IPv6 and IPv4 addresses
(first family first), start one connection attempt, start the next one when the
previous has not connected within ``delay`` (or at once when it failed), and
keep the first that connects; the others are cancelled and closed. asyncio's
``create_connection`` has this (``happy_eyeballs_delay``) but uvloop's, the
gateway's loop, does not, so it is done here and the connected socket handed to
``create_connection(sock=...)`` on either loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

Address = tuple[int, tuple[object, ...]]  # (family, sockaddr)

DEFAULT_DELAY = 0.25


def interleave(infos: Sequence[Address]) -> list[Address]:
    """Alternate the address families, keeping the resolver's order in each
    and starting with the family of the first answer (RFC 8305 section 4)."""
    first: list[Address] = []
    other: list[Address] = []
    lead = infos[0][0] if infos else 0
    for info in infos:
        (first if info[0] == lead else other).append(info)
    out: list[Address] = []
    for i in range(max(len(first), len(other))):
        if i < len(first):
            out.append(first[i])
        if i < len(other):
            out.append(other[i])
    return out


async def resolve(host: str, port: int) -> list[Address]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: set[tuple[int, tuple[object, ...]]] = set()
    out: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        key = (int(family), tuple(sockaddr))
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


async def _attempt(family: int, sockaddr: tuple[object, ...]) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


async def dial(host: str, port: int, *, delay: float = DEFAULT_DELAY) -> socket.socket:
    """A connected non-blocking socket to ``host:port``; ``OSError`` when every
    address failed (the last error's text). The caller bounds the time."""
    addresses = interleave(await resolve(host, port))
    if not addresses:
        raise OSError(f"no address for {host}")
    if len(addresses) == 1:
        return await _attempt(*addresses[0])
    pending: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None
    last: BaseException | None = None
    queue = list(addresses)
    try:
        while winner is None and (queue or pending):
            if queue:
                pending.add(asyncio.ensure_future(_attempt(*queue.pop(0))))
            done, _ = await asyncio.wait(
                pending,
                timeout=delay if queue else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                pending.discard(task)
                exc = task.exception()
                if exc is not None:
                    last = exc
                elif winner is None:
                    winner = task.result()
                else:
                    task.result().close()
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                sock = await task
                sock.close()
    if winner is None:
        if isinstance(last, OSError):
            raise last
        raise OSError(f"could not connect to {host}")
    return winner
