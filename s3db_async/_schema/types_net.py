"""Network and identifier types: ``ip4``, ``ip6``, ``mac``, ``cidr``, ``uuid``, ``semver``.

Every one of them is returned as a **canonical str** (whatever was given: a str or
an :mod:`ipaddress` / :class:`uuid.UUID` object), so records stay plain JSON-able
values that compare, partition and export like strings:

=========  ==================================  ==================================
type       accepted                            returned (canonical str)
=========  ==================================  ==================================
ip4        str, ``IPv4Address``                ``"192.168.0.1"``
ip6        str, ``IPv6Address``                ``"2001:db8::1"`` (compressed)
mac        ``aa:bb:..``, ``AA-BB-..``,         ``"00:1a:2b:3c:4d:5e"`` (lowercase,
           ``aabb.ccdd.eeff``, bare hex;       colons); 6 bytes (EUI-48) or 8
           6 or 8 bytes                        bytes (EUI-64)
cidr       str ``address/prefix`` (or a        ``"10.0.0.0/8"``, ``"2001:db8::/32"``
           netmask), ``IPv4Network``,
           ``IPv6Network``; host bits must
           be zero
uuid       ``uuid.UUID``, any str form         ``"0b1c5e4e-...-..."`` (lowercase,
           ``uuid.UUID`` parses                hyphenated)
semver     a str valid per semver 2.0.0        the str, unchanged
=========  ==================================  ==================================

Encodings (metadata; see :mod:`s3db_async._schema.encoding` for the conventions): the
packed bytes in unpadded base64url (``ip4`` 6 chars, ``mac`` 8 or 11, ``uuid`` 22,
``ip6`` 22 unless its text is shorter, ``cidr`` the prefix's bytes + ``.``/``:`` +
base62 prefix length unless the text is shorter). Decoders also read the plain text
form (``ip4``/``ip6`` values written before they were packed). The JSON body holds
the canonical str.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any

from .encoding import b62, b64u, esc_text, unb62, unb64u, unesc_text
from .invalid import fail

__all__ = [
    "CODECS",
    "cidr",
    "ip4",
    "ip6",
    "mac",
    "semver",
    "uuid_text",
]

_IPV4 = ipaddress.IPv4Address
_IPV6 = ipaddress.IPv6Address
_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)

_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
"""semver.org's regular expression (ASCII digits only)."""
_HEX = frozenset("0123456789abcdef")


# -- converters ------------------------------------------------------------------------


def ip4(value: Any) -> Any:
    """``ip4``: a canonical dotted-quad str."""
    if isinstance(value, str):
        try:
            return str(_IPV4(value))
        except ValueError:
            pass
    elif isinstance(value, _IPV4):
        return str(value)
    fail("ip4", "must be an IPv4 address (e.g. '192.168.0.1' or an IPv4Address)", value)


def ip6(value: Any) -> Any:
    """``ip6``: a canonical (compressed) str."""
    if isinstance(value, str):
        try:
            return str(_IPV6(value))
        except ValueError:
            pass
    elif isinstance(value, _IPV6):
        return str(value)
    fail("ip6", "must be an IPv6 address (e.g. '2001:db8::1' or an IPv6Address)", value)


def _mac_bytes(text: str) -> bytes | None:
    s = text.lower()
    n = len(s)
    if n in (17, 23) and s[2] in ":-":
        parts = s.split(s[2])
        if any(len(p) != 2 for p in parts):
            return None
    elif n in (14, 19) and s[4] == ".":
        parts = s.split(".")
        if any(len(p) != 4 for p in parts):
            return None
    elif n in (12, 16):
        parts = [s]
    else:
        return None
    digits = "".join(parts)
    if len(digits) not in (12, 16) or not _HEX.issuperset(digits):
        return None
    return bytes.fromhex(digits)


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac(value: Any) -> Any:
    """``mac``: lowercase, colon-separated str of 6 (EUI-48) or 8 (EUI-64) bytes."""
    if isinstance(value, str):
        raw = _mac_bytes(value)
        if raw is not None:
            return _mac_text(raw)
    fail(
        "mac",
        "must be a MAC address of 6 or 8 bytes (e.g. '00:1a:2b:3c:4d:5e', "
        "'00-1A-2B-3C-4D-5E' or '001a.2b3c.4d5e')",
        value,
    )


def cidr(value: Any) -> Any:
    """``cidr``: a canonical ``network/prefix`` str (IPv4 or IPv6)."""
    if isinstance(value, _NETS):
        return str(value)
    if isinstance(value, str):
        if "/" not in value:
            fail("cidr", "must be in CIDR notation 'address/prefix' (e.g. '10.0.0.0/8')", value)
        try:
            return str(ipaddress.ip_network(value))
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
        else:
            fail("cidr", f"has host bits set (the network is {loose})", value)
    fail("cidr", "must be an IPv4 or IPv6 network in CIDR notation (e.g. '10.0.0.0/8')", value)


def uuid_text(value: Any) -> Any:
    """``uuid``: a lowercase hyphenated str."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    fail("uuid", "must be a UUID (a uuid.UUID or a str like '12345678-1234-...')", value)


def semver(value: Any) -> Any:
    """``semver``: a str valid per Semantic Versioning 2.0.0, unchanged."""
    if isinstance(value, str) and _SEMVER.fullmatch(value):
        return str(value)
    fail("semver", "must be a semantic version per semver 2.0.0 (e.g. '1.4.2-rc.1+b7')", value)


# -- encodings ------------------------------------------------------------------------------


def _text(v: str) -> str:
    return esc_text(v, in_list=True)


def enc_ip4(v: str) -> str:
    """6 chars: base64url of the 4 bytes."""
    return b64u(_IPV4(v).packed)


def dec_ip4(s: str) -> str:
    """Inverse of :func:`enc_ip4` (also reads the dotted text)."""
    if "." in s or s[:1] == "~":
        return unesc_text(s)
    return str(_IPV4(unb64u(s)))


def enc_ip6(v: str) -> str:
    """The shorter of 22 chars of base64url (16 bytes) and the text (``::1``)."""
    addr = _IPV6(v)
    text = _text(v)
    if addr.scope_id:
        return text
    packed = b64u(addr.packed)
    return packed if len(packed) < len(text) else text


def dec_ip6(s: str) -> str:
    """Inverse of :func:`enc_ip6` (the text always has a ``:``, base64url never)."""
    if ":" in s:
        return unesc_text(s)
    return str(_IPV6(unb64u(s)))


def enc_mac(v: str) -> str:
    """8 (EUI-48) or 11 (EUI-64) chars: base64url of the bytes."""
    return b64u(bytes.fromhex(v.replace(":", "")))


def dec_mac(s: str) -> str:
    """Inverse of :func:`enc_mac` (also reads the text)."""
    if ":" in s:
        return unesc_text(s)
    raw = unb64u(s)
    if len(raw) not in (6, 8):
        raise ValueError("a MAC address has 6 or 8 bytes")
    return _mac_text(raw)


def enc_cidr(v: str) -> str:
    """Base64url of the prefix's bytes, then ``.`` (IPv4) or ``:`` (IPv6) and the base62
    prefix length (``10.0.0.0/8`` → ``Cg.8``); the text when that is shorter."""
    text = _text(v)
    net = ipaddress.ip_network(v)
    p = net.prefixlen
    packed = b64u(net.network_address.packed[: (p + 7) // 8])
    packed += ("." if net.version == 4 else ":") + b62(p)
    return packed if len(packed) < len(text) else text


def dec_cidr(s: str) -> str:
    """Inverse of :func:`enc_cidr` (the text always has a ``/``, the packed form never)."""
    if "/" in s or s[:1] == "~":
        return unesc_text(s)
    i = max(s.rfind("."), s.rfind(":"))
    if i < 0:
        raise ValueError("not an encoded network")
    raw = unb64u(s[:i])
    prefix = unb62(s[i + 1 :])
    if s[i] == ".":
        return str(ipaddress.IPv4Network((_IPV4(raw.ljust(4, b"\0")), prefix)))
    return str(ipaddress.IPv6Network((_IPV6(raw.ljust(16, b"\0")), prefix)))


def enc_uuid(v: str) -> str:
    """22 chars: base64url of the 16 bytes."""
    return b64u(uuid.UUID(v).bytes)


def dec_uuid(s: str) -> str:
    """Inverse of :func:`enc_uuid` (also reads the text)."""
    if len(s) != 22:
        return unesc_text(s)
    return str(uuid.UUID(bytes=unb64u(s)))


def _ident(v: Any) -> Any:
    return v


def _codec(enc: Any, dec: Any) -> Any:
    funcs = (enc, dec, _ident, _ident)
    return lambda param: funcs


CODECS: dict[str, Any] = {
    "ip4": _codec(enc_ip4, dec_ip4),
    "ip6": _codec(enc_ip6, dec_ip6),
    "mac": _codec(enc_mac, dec_mac),
    "cidr": _codec(enc_cidr, dec_cidr),
    "uuid": _codec(enc_uuid, dec_uuid),
    "semver": _codec(_text, unesc_text),
}
"""type → (param → (enc, dec, to_json, from_json)); the body holds the canonical str."""
