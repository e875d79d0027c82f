"""Which hosts may receive the run headers: the one allow-list policy of the outbound wrappers.

A pattern is an exact host name (``api.openai.com``), an IP address (``127.0.0.1``, ``::1``) or
``*.`` followed by a suffix (``*.internal.example.com``, which matches every name below that
suffix at any depth, but not the suffix itself). Matching ignores case and a trailing dot, and a
non-ASCII name matches its IDNA (punycode) form, which is what HTTP clients put on the wire. An
IPv6 address matches however it is written (``::1`` is ``0:0:0:0:0:0:0:1``), in the pattern and
in the request, since clients differ in how they spell it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator

from ._show import show_value

__all__ = ["HostAllowList", "allow_list"]

_EXAMPLE = "hosts=('api.openai.com', '*.internal.example.com')"
_FORBIDDEN = frozenset("/?#@[] \t\r\n\\")
# One DNS label as HTTP clients accept it: letters, digits, '-' and '_' (found in internal names),
# neither starting nor ending with '-', at most 63 characters.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _to_ascii(name: str) -> str:
    """Return ``name`` in the IDNA form HTTP clients send (IDNA 2008 with UTS 46 when available)."""
    try:
        import idna  # every outbound client this library wraps depends on it
    except ImportError:  # pragma: no cover - only without any HTTP client installed
        return name.encode("idna").decode("ascii")
    return str(idna.encode(name, uts46=True).decode("ascii"))


def _normalize(pattern: object) -> tuple[str, bool]:
    """Return ``(name, is_suffix)`` for one pattern, or raise naming the bad pattern and the fix."""
    if not isinstance(pattern, str):
        raise TypeError(
            f"hosts must hold host names as str, got {type(pattern).__name__} "
            f"{show_value(pattern)}: pass e.g. {_EXAMPLE}"
        )
    name = pattern.strip().lower()
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    is_suffix = name.startswith("*.")
    if is_suffix:
        name = name[2:]
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]  # a bracketed IPv6 address, as written in a URL
    problem = None
    if "://" in pattern:
        problem = "is a URL; give the host name only"
    elif not name or name == "*":
        problem = "matches no host name; leave hosts=None to send the run to every host"
    elif "*" in name:
        problem = "has a '*' that is not the whole first label; write '*.example.com'"
    elif _FORBIDDEN.intersection(name):
        problem = "is not a host name; give the host name only, without path or credentials"
    elif ":" in name and name.count(":") == 1:
        problem = "has a port; give the host name only (every port of the host matches)"
    elif name.startswith(".") or ".." in name:
        problem = "has an empty label"
    elif not name.isascii():
        try:
            name = _to_ascii(name)
        except Exception:  # the idna codecs raise UnicodeError or their own IDNAError
            problem = "is not a valid internationalized host name"
    if problem is None:
        name, problem = _check_labels(name, is_suffix)
    if problem is not None:
        raise ValueError(f"hosts pattern {show_value(pattern)} {problem}: pass e.g. {_EXAMPLE}")
    return name, is_suffix


def _check_labels(name: str, is_suffix: bool) -> tuple[str, str | None]:
    """Return ``name`` (an IP address in its one canonical form) and what is wrong with it."""
    if ":" in name:
        try:
            address = ipaddress.IPv6Address(name)
        except ValueError:
            return name, "is not a valid IPv6 address; write it as in a URL, e.g. '::1'"
        if is_suffix:
            return name, "is an IP address after '*.'; list the address itself"
        return address.compressed, None
    if name.rpartition(".")[2].isdigit():  # no top-level domain is all digits: an IPv4 address
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return name, "is neither a host name nor an IPv4 address (four numbers 0-255)"
        if is_suffix:
            return name, "is an IP address after '*.'; list the address itself"
        return name, None
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return name, (
            "is not a valid host name: each label holds letters, digits, '-' or '_', neither "
            "starts nor ends with '-' and has at most 63 characters (253 in all)"
        )
    return name, None


class HostAllowList:
    """An allow-list of host names and ``*.suffix`` patterns, checked once when made.

    Iterating it gives the patterns back, so it can be passed on as another ``hosts=``.

    Raises TypeError or ValueError naming the bad pattern and the fix.
    """

    __slots__ = ("_exact", "_patterns", "_suffixes")

    def __init__(self, hosts: Iterable[str]) -> None:
        if isinstance(hosts, (str, bytes)):
            raise TypeError(
                f"hosts must be a list or tuple of host names, not a single "
                f"{type(hosts).__name__} {show_value(hosts)}: pass hosts=({hosts!r},)"
            )
        try:
            patterns = tuple(hosts)
        except TypeError:
            raise TypeError(
                f"hosts must be an iterable of host names or None, got {type(hosts).__name__}: "
                f"pass e.g. {_EXAMPLE}"
            ) from None
        if not patterns:
            raise ValueError(
                "hosts is empty, so no request would carry the run: list the hosts that "
                "should get it, or leave hosts=None to send it to every host"
            )
        exact: set[str] = set()
        suffixes: list[str] = []
        for pattern in patterns:
            name, is_suffix = _normalize(pattern)
            if is_suffix:
                suffixes.append("." + name)
            else:
                exact.add(name)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        self._patterns = patterns

    def allows(self, host: str) -> bool:
        """Return whether ``host`` (as the client sends it: ASCII, IDNA-encoded) may get the run."""
        host = host.lower()
        if host.endswith("."):
            host = host[:-1]
        if host.startswith("["):
            host = host[1:-1]
        if host in self._exact or host.endswith(self._suffixes):
            return True
        # Only a host that did not match pays for this: an IPv6 address spelled another way.
        return ":" in host and self._allows_ipv6(host)

    def _allows_ipv6(self, host: str) -> bool:
        try:
            return ipaddress.IPv6Address(host).compressed in self._exact
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._patterns)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HostAllowList):
            return self._exact == other._exact and set(self._suffixes) == set(other._suffixes)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._exact, frozenset(self._suffixes)))

    def __repr__(self) -> str:
        return f"HostAllowList({self._patterns!r})"


def allow_list(hosts: Iterable[str] | None) -> HostAllowList | None:
    """Return the HostAllowList for a ``hosts=`` option: None (every host) stays None."""
    if hosts is None or isinstance(hosts, HostAllowList):
        return hosts
    return HostAllowList(hosts)
