"""Every socket the embedded stack listens on is bound to loopback, read from /proc.

Flags are not enough: upstream placement and scheduler v1.18.2 parse
--healthz-listen-address and ignore it, binding their healthz port on every interface
(patched by sidecar/patches/healthz-listen-address.patch). So the test looks at what
the kernel says each runtime process actually listens on.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path

import pytest

from fte.dapr_stack import EmbeddedStack, read_record

pytestmark = pytest.mark.engine

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(host, 16)))
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return ip, int(port, 16)


def _bound_sockets() -> dict[int, tuple[str, str, int]]:
    """inode -> (protocol, ip, port) of every listening TCP and bound UDP socket."""
    found = {}
    for protocol, state in (("tcp", _TCP_LISTEN), ("udp", _UDP_UNCONNECTED)):
        for table in (f"/proc/net/{protocol}", f"/proc/net/{protocol}6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == state:
                    found[int(fields[9])] = (protocol, *_address(fields[1]))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def test_every_runtime_port_listens_on_loopback_only(private_stack: EmbeddedStack) -> None:
    record = read_record(private_stack.data_dir)
    assert record is not None
    sockets = _bound_sockets()
    listening = {
        role: sorted(sockets[inode] for inode in _socket_inodes(pid) if inode in sockets)
        for role, pid in record.pids.items()
    }

    assert set(listening) == {"placement", "scheduler", "daprd"}
    for role, bound in listening.items():
        assert bound, f"{role} listens on nothing?"
        exposed = [b for b in bound if not ipaddress.ip_address(b[1]).is_loopback]
        assert exposed == [], f"{role} listens beyond loopback: {exposed}"
    # The healthz ports that upstream bound on every interface are among them.
    ports = {port for bound in listening.values() for _, _, port in bound}
    assert {record.ports["placement_healthz"], record.ports["scheduler_healthz"]} <= ports
