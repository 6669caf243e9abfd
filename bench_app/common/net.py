"""Ports and HTTP: the only place bench_app opens sockets or speaks HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any, Mapping, Optional


def client_host(host: str) -> str:
    """Where a client connects to a server bound to `host` (a wildcard bind is reached on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((socket.gethostbyname(client_host(host)), port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((socket.gethostbyname(client_host(host)), 0))
        return probe.getsockname()[1]


def http_get_json(
    url: str, timeout: float = 5.0, headers: Optional[Mapping[str, str]] = None
) -> Optional[Any]:
    """The decoded JSON body of a GET, or None when the server is unreachable or answers garbage."""
    import urllib.error  # urllib.request costs ~25 ms to import; a dry run never needs it
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout
        ) as response:
            return json.loads(response.read().decode() or "null")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def http_get_text(
    url: str, timeout: float = 5.0, headers: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """The body of a GET as text, or None when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout
        ) as response:
            return response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None


def http_status(url: str, timeout: float = 5.0, headers: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """The HTTP status of a GET, or None when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout
        ) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None
