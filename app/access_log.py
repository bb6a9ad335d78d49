"""The API's access log, with bearer tokens taken out of URLs (the live WebSocket routes accept
``?access_token=``, and access logs outlive tokens).

Every spelling of the parameter's name is masked: aiohttp percent-decodes query names, so
``access%5Ftoken`` logs in as ``access_token`` does; case and ``+``/``%20`` variants are masked too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from app.auth import QUERY_TOKEN_PARAM

# One query parameter: its name (up to "=") and its value (up to "&", ";", "#" or a space).
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]*)=(?P<value>[^&;#\s]*)")


def _is_token_name(name: str) -> bool:
    decoded = name
    for _ in range(3):  # decoded more than once: a name encoded twice is still masked
        decoded = unquote_plus(decoded)
    return decoded.strip().lower() == QUERY_TOKEN_PARAM


def mask_tokens(text: str) -> str:
    return _PARAM.sub(lambda m: f"{m['lead']}{m['name']}=***" if _is_token_name(m["name"]) else m[0], text)


class MaskingAccessLogger(AccessLogger):
    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [(key, mask_tokens(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]
