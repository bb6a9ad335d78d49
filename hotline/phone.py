"""Caller numbers: clean what Asterisk hands us, and mask them for logs."""

from __future__ import annotations

MAX_NUMBER_LEN = 32
_ALLOWED = set("0123456789+*#")


def clean_number(raw: str | None) -> str:
    """Keep only dial characters, bounded in length. Quotes, newlines, names and junk go.

    Returns ``"anonymous"`` when nothing usable is left, so downstream code never sees an empty key.
    """
    if not raw:
        return "anonymous"
    s = raw.strip()
    # "Name" <1234> -> 1234
    if "<" in s and ">" in s:
        s = s[s.rfind("<") + 1 : s.rfind(">")]
    if s.startswith("sip:"):
        s = s[4:].split("@", 1)[0]
    kept = "".join(ch for ch in s if ch in _ALLOWED)[:MAX_NUMBER_LEN]
    return kept or "anonymous"


def mask_number(number: str | None) -> str:
    """138****5678 style: keep a prefix and the last four, for logs."""
    if not number:
        return "-"
    if len(number) <= 4:
        return "*" * len(number)
    if len(number) <= 7:  # short numbers: show at most the last two
        return "*" * (len(number) - 2) + number[-2:]
    return number[:3] + "*" * (len(number) - 7) + number[-4:]
