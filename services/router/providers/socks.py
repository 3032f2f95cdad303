"""SOCKS5 for upstream calls (RFC 1928), with username/password (RFC 1929).

``socks5://`` resolves the upstream's name here and asks the proxy for the
address; ``socks5h://`` hands the name to the proxy, which resolves it (the
way curl reads the two schemes). Either way the socket then carries bytes to
the origin: plain HTTP/1.1 for http, the TLS handshake next for https."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from tokgateway.router.providers.proxy import Proxy, ProxyError

VERSION = 5
NO_AUTH, USER_PASS, NO_METHOD = 0x00, 0x02, 0xFF
CONNECT = 0x01
IPV4, DOMAIN, IPV6 = 0x01, 0x03, 0x04
REPLIES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


async def _recv_exactly(sock: socket.socket, size: int, proxy: Proxy) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        piece = await loop.sock_recv(sock, size - len(data))
        if not piece:
            raise ProxyError(f"the SOCKS proxy {proxy.url} closed the connection")
        data += piece
    return data


async def _address(host: str, port: int, remote_dns: bool) -> bytes:
    """ATYP, address and port of the CONNECT request."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is None and not remote_dns:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ProxyError(f"cannot resolve {host} ({exc.strerror})") from None
        ip = ipaddress.ip_address(str(infos[0][4][0]))
    if ip is None:
        name = host.encode("idna")
        if len(name) > 255:
            raise ProxyError("the upstream host name is too long for SOCKS5")
        addr = bytes([DOMAIN, len(name)]) + name
    elif ip.version == 4:
        addr = bytes([IPV4]) + ip.packed
    else:
        addr = bytes([IPV6]) + ip.packed
    return addr + port.to_bytes(2, "big")


async def socks5_connect(sock: socket.socket, proxy: Proxy, host: str, port: int) -> None:
    """Open a SOCKS5 tunnel to ``host:port`` over ``sock`` (connected to the proxy)."""
    loop = asyncio.get_running_loop()
    methods = bytes([USER_PASS]) if proxy.username is not None else bytes([NO_AUTH])
    await loop.sock_sendall(sock, bytes([VERSION, len(methods)]) + methods)
    version, method = await _recv_exactly(sock, 2, proxy)
    if version != VERSION:
        raise ProxyError(f"the proxy {proxy.url} does not speak SOCKS5")
    if method == NO_METHOD or method not in methods:
        wanted = "username/password" if proxy.username is not None else "no authentication"
        raise ProxyError(f"the SOCKS proxy {proxy.url} refused {wanted}")
    if method == USER_PASS:
        user = (proxy.username or "").encode()
        password = proxy.password.encode()
        if len(user) > 255 or len(password) > 255:
            raise ProxyError("a SOCKS5 username or password is at most 255 bytes")
        await loop.sock_sendall(
            sock, bytes([1, len(user)]) + user + bytes([len(password)]) + password
        )
        _, status = await _recv_exactly(sock, 2, proxy)
        if status != 0:
            raise ProxyError(f"the SOCKS proxy {proxy.url} refused the username or password")
    request = bytes([VERSION, CONNECT, 0]) + await _address(host, port, proxy.remote_dns)
    await loop.sock_sendall(sock, request)
    version, reply, _, atyp = await _recv_exactly(sock, 4, proxy)
    if version != VERSION:
        raise ProxyError(f"the SOCKS proxy {proxy.url} sent a malformed reply")
    if reply != 0:
        why = REPLIES.get(reply, f"reply {reply}")
        raise ProxyError(f"the SOCKS proxy {proxy.url} could not connect ({why})")
    if atyp == IPV4:
        rest = 4
    elif atyp == IPV6:
        rest = 16
    elif atyp == DOMAIN:
        rest = (await _recv_exactly(sock, 1, proxy))[0]
    else:
        raise ProxyError(f"the SOCKS proxy {proxy.url} sent a malformed reply")
    await _recv_exactly(sock, rest + 2, proxy)  # the bound address and port
