"""The multipart subtype of a body, and the ``Content-Type`` that names it.

A body is ``multipart/form-data`` unless it is given another RFC 2046
subtype (``related``, ``mixed``, ...).  :func:`check_subtype` checks the
subtype, :func:`content_type` builds the header value (with RFC 2387's
``type`` and ``start`` parameters for ``related``), and :func:`check_names`
refuses a form-data body holding a part without a name.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from poster._parts import _TOKEN, MultipartParam

__all__ = ["FORM_DATA", "check_subtype", "check_parameter", "content_type", "check_names"]

#: The subtype of every body unless told otherwise.
FORM_DATA = "form-data"


def check_subtype(subtype: Any) -> str:
    """``subtype`` checked to be an RFC 7230 token, lowercased (media types
    are case-insensitive; this is the spelling sent)."""
    if subtype == FORM_DATA:  # the usual one, checked already
        return FORM_DATA
    if not isinstance(subtype, str):
        raise TypeError(f"subtype must be a str such as 'related' or 'mixed', not {type(subtype).__name__}")
    if not subtype or not set(subtype) <= _TOKEN:
        raise ValueError(
            f"subtype {subtype!r} is not an RFC 7230 token; give the part after "
            "'multipart/' alone, such as 'form-data', 'related' or 'mixed'"
        )
    return subtype.lower()


def check_parameter(what: str, value: Any, example: str) -> str:
    """``value`` checked to go inside the double quotes of a header parameter.

    Printable ASCII only, without ``"`` or ``\\`` (which would end or escape
    the quoted string) or ``=?`` (which the ``email`` package reads as the
    start of an RFC 2047 word).  ``example`` is shown in the error.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str such as {example!r}, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty; leave it out, or give one such as {example!r}")
    for char in value:
        if char > "\x7f":
            raise ValueError(
                f"{what} {value!r} holds the non-ASCII character {char!r}; a header "
                f"parameter is ASCII: give one such as {example!r}"
            )
        if char < " " or char == "\x7f" or char in '"\\':
            raise ValueError(
                f"{what} {value!r} holds {char!r}, which cannot go inside a quoted "
                "header parameter (control characters such as CR, LF and NUL, double "
                f"quotes and backslashes are refused); give one such as {example!r}"
            )
    if "=?" in value:
        raise ValueError(
            f"{what} {value!r} holds '=?', which the email package reads as the start "
            f"of an encoded word; give one such as {example!r}"
        )
    return value


def content_type(
    quoted_boundary: str, subtype: str, type: Optional[str] = None, start: Optional[str] = None
) -> str:
    """The ``Content-Type`` of a body: ``multipart/<subtype>; boundary=...``.

    ``quoted_boundary`` is the boundary's wire spelling and ``subtype`` was
    checked by :func:`check_subtype`.  ``type`` (the media type of the root
    part) and ``start`` (its ``Content-ID``) are RFC 2387's parameters of
    ``multipart/related`` and are refused with any other subtype.
    """
    value = f"multipart/{subtype}; boundary={quoted_boundary}"
    if (type is not None or start is not None) and subtype != "related":
        given = "type=" if type is not None else "start="
        raise ValueError(
            f"{given} is a parameter of multipart/related (RFC 2387), not of "
            f"multipart/{subtype}; pass subtype='related', or leave {given} out"
        )
    if type is not None:
        value += f'; type="{check_parameter("type", type, "application/json")}"'
    if start is not None:
        value += f'; start="{check_parameter("start", start, "<root@example.org>")}"'
    return value


def check_names(parts: Iterable[Any], subtype: str) -> None:
    """Refuse a part without a name in a ``form-data`` body (RFC 7578 names every part)."""
    if subtype != FORM_DATA:
        return
    for part in parts:
        if isinstance(part, MultipartParam) and part._name is None:
            raise ValueError(
                f"{part.label()} cannot go in a multipart/form-data body, whose every "
                "part needs a name (RFC 7578); give it a name, or encode the body "
                "with subtype='related' or subtype='mixed'"
            )
