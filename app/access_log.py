"""The API's access log, with bearer tokens taken out of URLs (the live WebSocket routes accept
``?access_token=``, and access logs outlive tokens)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

# Any query parameter whose name decodes to access_token (access%5Ftoken, ACCESS_TOKEN, ...): the
# server decodes names before it reads them, so the log must too.
_PARAM = re.compile(r"([?&;])([^=&\s]*)=([^&\s]*)")


def mask_tokens(text: str) -> str:
    def mask(m: re.Match[str]) -> str:
        name = unquote_plus(m.group(2)).lower()
        return f"{m.group(1)}{m.group(2)}=***" if name == "access_token" else m.group(0)

    return _PARAM.sub(mask, text)


class MaskingAccessLogger(AccessLogger):
    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [(key, mask_tokens(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]
