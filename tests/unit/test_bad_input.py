"""Bad input the outside review found (issue 9, "Medium"): each gets a clear 4xx with an error id,
nothing is written, and the data already stored still reads back (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from app.access_log import mask_tokens

LONE = "\ud800"


async def raw_post(api, path: str, text: str, role: str) -> tuple[int, Any]:
    """A JSON body written by hand: ``json.dumps`` escapes a lone surrogate as ``\\ud800``, which
    the server's JSON parser turns back into one."""
    headers = {**api.headers(role), "Content-Type": "application/json"}
    async with api.client.request("POST" if "events" in path or "transcripts" in path else "PUT", path,
                                  data=text.encode(), headers=headers) as resp:
        return resp.status, await resp.json()


async def stored_call(api) -> None:
    status, body = await api.post_events({"events": api.answered_call("2100.1")})
    assert status == 200


async def test_a_lone_surrogate_in_an_outcome_note_or_detail_is_refused(api) -> None:
    await stored_call(api)
    for body in ({"outcome": "guided", "note": LONE}, {"outcome": "guided", "detail": "x" + LONE},
                 {"outcome": "guided", "note": "a\x00b"}):
        status, answer = await raw_post(api, "/api/calls/2100.1/outcome", json.dumps(body), "admin")
        assert status == 400 and answer["error_id"] == "validation_failed", answer
    status, call = await api.get_call("2100.1")
    assert status == 200 and call["outcome"] != "guided"


async def test_a_lone_surrogate_in_event_data_or_transcript_text_is_refused(api) -> None:
    ev = api.event("2100.2", "arrived", 0, data={"note": LONE})
    status, answer = await raw_post(api, "/api/events", json.dumps(ev), "service")
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    seg = {"call": "2100.2", "tap": "t-1", "seq": 0, "speaker": "caller", "kind": "final",
           "start": api.T0, "end": api.T0 + 1, "text": "你好" + LONE, "confidence": 0.9, "seat": None}
    status, answer = await raw_post(api, "/api/transcripts", json.dumps({"segments": [seg]}), "service")
    assert status == 400, answer
    assert (await api.get_call("2100.2"))[0] == 404, "nothing was stored"


async def test_an_id_with_a_trailing_newline_is_not_a_second_call(api) -> None:
    await stored_call(api)
    ev = api.event("2100.1\n", "hangup", 90)
    status, answer = await api.post_events(ev)
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    status, body = await api.call("GET", "/api/calls", "supervisor")
    assert status == 200 and [c["linkedid"] for c in body["calls"]] == ["2100.1"]


async def test_event_data_nested_deeply_is_refused(api) -> None:
    ev = json.dumps(api.event("2100.3", "arrived", 0, data={"x": "HOLE"}))
    text = ev.replace('"HOLE"', '{"x": ' * 900 + "{}" + "}" * 900)  # parses, then 500'd on storing
    status, answer = await raw_post(api, "/api/events", text, "service")
    assert status == 400 and answer["error_id"] == "validation_failed", answer
    assert "nest" in json.dumps(answer)
    assert (await api.get_call("2100.3"))[0] == 404


async def test_a_non_utf8_authorization_header_is_401_not_500(api) -> None:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /api/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    head = (await reader.read(200)).split(b"\r\n", 1)[0]
    writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head


def test_every_spelling_of_the_token_parameter_is_masked_in_the_access_log() -> None:
    for line in ("GET /api/live?access_token=SECRET HTTP/1.1", "GET /api/live?access%5Ftoken=SECRET&a=1",
                 "GET /api/live?a=1&access%5ftoken=SECRET",
                 "GET /api/live?access_token=SECRET&access_token=x"):
        assert "SECRET" not in mask_tokens(line), line
    assert mask_tokens("GET /api/calls?seat=1201") == "GET /api/calls?seat=1201"
