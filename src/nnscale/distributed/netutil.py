"""Rendezvous endpoints: parsing, free ports, which node hosts the store, and reachability checks.

torchrun's c10d rendezvous runs a TCPStore on the host named by `--rdzv-endpoint`; every other agent
connects to it (torch/distributed/elastic/rendezvous/c10d_rendezvous_backend.py). torchrun guesses
whether it is the host by comparing the endpoint with this machine's host name and addresses
(`_matches_machine_hostname`), a guess that is wrong in network namespaces and on hosts whose name
resolves to 127.0.0.1. nnscale decides instead by trying to bind the endpoint's address: only an
address this machine owns can be bound. It passes the answer as `--rdzv-conf is_host=…`.

The rank-0 agent also advertises its own address to the workers as MASTER_ADDR (its `--local-addr`,
else its FQDN, `RendezvousStoreInfo.build`). On a multi-homed node the FQDN can name the wrong
network, so nnscale passes the address of the interface that routes to the endpoint: the source
address the kernel picks for a UDP socket "connected" to it (connect(2) on a datagram socket only
sets the default peer; no packet is sent).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from nnscale.errors import UserError

_SIOCGIFADDR = 0x8915  # Linux <linux/sockios.h>: get an interface's IPv4 address
# Rendezvous ports for batch jobs are drawn from below Linux's ephemeral range (net.ipv4.
# ip_local_port_range, 32768-60999 by default, Documentation/networking/ip-sysctl.rst), so no
# outgoing connection of the node holds one by chance, and above the registered ports most
# services use; never torchrun's well-known default 29400.
JOB_PORT_RANGE = (20000, 32768)
TORCHRUN_DEFAULT_PORT = 29400


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str, option: str = "--rdzv-endpoint") -> Endpoint:
    """HOST:PORT or [IPv6]:PORT; UserError naming the option otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        ok = bool(sep and host and port_text)
    else:
        host, _, port_text = text.rpartition(":")
        ok = bool(host and port_text) and ":" not in host
    if not ok or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UserError(f"{option} {text!r} is not HOST:PORT with a port from 1 to 65535")
    return Endpoint(host, int(port_text))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's pick for port 0). Another process may take it
    before torchrun binds it; the window is milliseconds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def choose_port(host: str = "0.0.0.0", tries: int = 50) -> int:
    """A random port from JOB_PORT_RANGE that nothing listens on here now, for a job whose first
    node is not known yet: random (secrets, not a guessable sequence), so two jobs that share a
    node do not meet on one port. Where the job's first node is another host, the port is checked
    again there when torchrun starts (`check_port_free`)."""
    low, high = JOB_PORT_RANGE
    for _ in range(tries):
        port = low + secrets.randbelow(high - low)
        if port == TORCHRUN_DEFAULT_PORT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    raise UserError(f"no free port found in {low}-{high} after {tries} random tries on {host}; "
                    "give one with --port")


def _resolve(ep: Endpoint, option: str) -> list[tuple]:
    try:
        return socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"{option} {ep}: cannot resolve {ep.host!r} ({e.strerror})") from None


def is_local(ep: Endpoint, option: str = "--rdzv-endpoint") -> bool:
    """Whether the endpoint's address belongs to this machine (in this network namespace)."""
    if ep.host == "localhost":
        return True
    for family, _, _, _, addr in _resolve(ep, option):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr[0], 0))
                return True
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL:
                    raise
    return False


def check_port_free(ep: Endpoint, option: str = "--rdzv-endpoint") -> None:
    """UserError if something on this machine already listens on the endpoint's port."""
    for family, _, _, _, addr in _resolve(ep, option):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # torchrun's TCPStore binds with SO_REUSEADDR too: TIME_WAIT remnants of an earlier
            # launch are no conflict, only a live listener is.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr[0], ep.port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise UserError(
                        f"{option} {ep}: port {ep.port} is already in use on this machine; "
                        "give another port (or stop what holds it)"
                    ) from None
                if e.errno in (errno.EACCES, errno.EPERM):
                    raise UserError(
                        f"{option} {ep}: not allowed to listen on port {ep.port} "
                        "(ports below 1024 need root); give a port above 1024"
                    ) from None
                raise


def local_address_towards(ep: Endpoint, option: str = "--rdzv-endpoint") -> str | None:
    """The source address this machine would use to reach the endpoint; None if there is no route."""
    for family, _, _, _, addr in _resolve(ep, option):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.connect(addr)
            except OSError:
                continue
            return s.getsockname()[0]
    return None


def interface_of(address: str) -> str | None:
    """The name of the network interface holding an IPv4 address (Linux), else None."""
    try:
        wanted = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    if wanted.is_loopback:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # interface without an IPv4 address
            if socket.inet_ntoa(packed[20:24]) == address:
                return name
    return None


def wait_reachable(ep: Endpoint, wait_s: float, option: str = "--rdzv-endpoint") -> None:
    """Wait until a TCP connection to the endpoint succeeds; UserError when that cannot happen.

    "Connection refused" means the host is there but its torchrun has not started yet (nodes of one
    job start at slightly different times), so it is retried until `wait_s`; an unroutable network
    fails at once.
    """
    addrs = _resolve(ep, option)
    deadline = time.monotonic() + wait_s
    last = "no address"
    while True:
        for family, _, _, _, addr in addrs:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(max(0.5, min(5.0, deadline - time.monotonic())))
                try:
                    s.connect(addr)
                    return
                except OSError as e:
                    if e.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL):
                        raise UserError(
                            f"{option} {ep} is unreachable from this machine ({e.strerror}); "
                            "check the address and the network"
                        ) from None
                    last = e.strerror or type(e).__name__
        if time.monotonic() >= deadline:
            raise UserError(
                f"{option} {ep} did not answer within {wait_s:.0f} s ({last}); is the first node's "
                "nnscale running, and is the port open between the nodes?"
            )
        time.sleep(0.5)
