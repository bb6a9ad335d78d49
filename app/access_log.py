"""The API's access log, with bearer tokens taken out of URLs (the live WebSocket routes accept
``?access_token=``, and access logs outlive tokens)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

_TOKEN = re.compile(r"(access_token=)[^&\s]*")


def mask_tokens(text: str) -> str:
    return _TOKEN.sub(r"\1***", text)


class MaskingAccessLogger(AccessLogger):
    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [(key, mask_tokens(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]
