"""POST /api/transcripts (validation, all or nothing, idempotent replay) and GET .../transcript."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select

from app import keys
from app.models import AuditRow, TranscriptSegmentRow, WorkOrderCorrectionRow, WorkOrderRow

T0 = 1_760_000_000.0


def seg(call: str, seq: int, text: str = "", *, speaker: str = "caller", kind: str = "final",
        at: float | None = None, tap: str | None = None, seat: str | None = None) -> dict[str, Any]:
    start = T0 + 3 * seq if at is None else at
    return {"call": call, "tap": tap or f"{call}-{speaker}", "seq": seq, "speaker": speaker, "kind": kind,
            "start": start, "end": start + 2.5, "text": text, "confidence": 0.9 if kind == "final" else None,
            "seat": seat}


@pytest.fixture
async def tapi(api):
    """The app on each database, with this feature's tables empty (PostgreSQL keeps one database)."""
    async with api.client.server.app[keys.DATABASE].write() as conn:
        for table in (TranscriptSegmentRow, WorkOrderRow, WorkOrderCorrectionRow):
            await conn.execute(delete(table))
    return api


async def stored_count(api) -> int:
    async with api.client.server.app[keys.DATABASE].read() as conn:
        return (await conn.execute(select(func.count()).select_from(TranscriptSegmentRow))).scalar_one()


async def post(api, segments: list[dict], role: str = "service") -> tuple[int, Any]:
    return await api.call("POST", "/api/transcripts", role, json={"segments": segments})


@pytest.mark.parametrize(("bad", "field"), [
    ({"seq": -1}, "segment.seq"),
    ({"speaker": "bystander"}, "segment.speaker"),
    ({"start": T0 + 10, "end": T0 + 5}, "segment.end"),
    ({"text": "字" * 2001}, "segment.text"),
    ({"call": "bad id!"}, "segment.call"),
    ({"volume": 3}, "unknown fields"),
    ({"kind": "gap", "text": "asleep"}, "a gap's reason"),
])
async def test_a_bad_segment_refuses_the_whole_batch(tapi, bad: dict, field: str) -> None:
    batch = [seg("t1", 0, "路灯坏了"), {**seg("t1", 1, "在胜利路"), **bad}, seg("t1", 2, "好几天了")]
    status, body = await post(tapi, batch)
    assert (status, body["error_id"]) == (400, "transcript.invalid_segment")
    assert body["details"][0]["loc"][:3] == ["body", "segments", 1]
    assert body["message"].startswith("segment 1:") and field in body["message"]
    assert await stored_count(tapi) == 0


async def test_partials_are_refused_and_nothing_is_stored(tapi) -> None:
    status, body = await post(tapi, [seg("t2", 0, "路灯坏了"), seg("t2", 1, "在胜", kind="partial")])
    assert (status, body["error_id"]) == (400, "transcript.partial_not_stored")
    assert body["details"] == {"indexes": [1]}
    assert await stored_count(tapi) == 0


@pytest.mark.parametrize("body", [
    {"segments": []},
    {"segments": [seg("t3", i) for i in range(501)]},
    {"segments": "nope"},
    {"segments": [seg("t3", 0)], "more": 1},
    [seg("t3", 0)],
])
async def test_the_batch_shape_is_checked(tapi, body: Any) -> None:
    status, answer = await tapi.call("POST", "/api/transcripts", "service", json=body)
    assert (status, answer["error_id"]) == (400, "validation_failed")
    assert await stored_count(tapi) == 0


async def test_a_replay_stores_nothing_twice(tapi) -> None:
    batch = [seg("t4", 0, "", speaker="operator_12345", seat="1201"), seg("t4", 1, "路灯坏了"),
             seg("t4", 0, "recognizer_down", kind="gap", tap="t4-other")]
    status, body = await post(tapi, batch)
    assert status == 200 and (body["received"], body["stored"], body["duplicates"]) == (3, 3, 0)
    status, body = await post(tapi, batch)
    assert status == 200 and (body["received"], body["stored"], body["duplicates"]) == (3, 0, 3)
    assert body["work_orders"] == []  # the draft already holds these words: nothing to redo
    # the same (tap, seq) twice in one batch is one segment; the first one wins
    status, body = await post(tapi, [seg("t4", 5, "第一次"), seg("t4", 5, "第二次")])
    assert (body["stored"], body["duplicates"]) == (1, 1)
    assert await stored_count(tapi) == 4
    _, transcript = await tapi.call("GET", "/api/calls/t4/transcript", "operator")
    assert [s["text"] for s in transcript["segments"] if s["seq"] == 5] == ["第一次"]


async def test_transcript_reads_back_in_time_order_with_gaps_apart(tapi) -> None:
    # posted out of order and in two batches, two streams interleaved in time
    op = dict(speaker="operator_12345", seat="1201")
    await post(tapi, [seg("t5", 2, "在胜利路", at=T0 + 9), seg("t5", 1, "您好，请讲", at=T0 + 1, **op)])
    await post(tapi, [
        seg("t5", 1, "路灯坏了", at=T0 + 4),
        seg("t5", 3, "tap_lost", kind="gap", at=T0 + 12),
        seg("t5", 2, "好的，马上记录", at=T0 + 7, **op),
    ])
    status, t = await tapi.call("GET", "/api/calls/t5/transcript", "operator")
    assert status == 200
    assert [(s["speaker"], s["text"]) for s in t["segments"]] == [
        ("operator_12345", "您好，请讲"), ("caller", "路灯坏了"), ("operator_12345", "好的，马上记录"),
        ("caller", "在胜利路"), ("caller", "tap_lost")]
    assert t["segments"][0] == {"call": "t5", "tap": "t5-operator_12345", "seq": 1,
                                "speaker": "operator_12345", "kind": "final", "start": T0 + 1,
                                "end": T0 + 3.5, "text": "您好，请讲", "confidence": 0.9, "seat": "1201"}
    assert t["finals"] == 4 and t["link"] == "/api/calls/t5/transcript"
    assert t["counts"] == {"caller": 2, "operator_12345": 2, "operator_110": 0, "linkage": 0}
    assert t["gaps"] == [{"speaker": "caller", "seat": None, "tap": "t5-caller", "from": T0 + 12,
                          "to": T0 + 14.5, "reason": "tap_lost"}]


async def test_transcript_reads_are_audited_and_unknown_calls_are_404(tapi) -> None:
    await post(tapi, [seg("t6", 0, "路灯坏了")])
    await tapi.call("GET", "/api/calls/t6/transcript", "supervisor")
    async with tapi.client.server.app[keys.DATABASE].read() as conn:
        rows = (await conn.execute(select(AuditRow.who, AuditRow.action, AuditRow.target))).all()
    assert [tuple(r) for r in rows] == [("test-supervisor", "read_transcript", "t6")]
    status, body = await tapi.call("GET", "/api/calls/nobody.1/transcript", "operator")
    assert (status, body["error_id"]) == (404, "unknown_call")
    # a known call with nothing transcribed reads back empty
    await tapi.post_events(tapi.event("t7", "arrived", 0))
    status, body = await tapi.call("GET", "/api/calls/t7/transcript", "operator")
    assert status == 200 and body["segments"] == [] and body["gaps"] == []


async def test_roles(tapi) -> None:
    for role in ("operator", "supervisor", "admin"):
        status, body = await post(tapi, [seg("t8", 0, "路灯坏了")], role=role)
        assert (status, body["error_id"]) == (403, "forbidden")
    assert (await post(tapi, [seg("t8", 0, "路灯坏了")]))[0] == 200
    assert (await tapi.call("GET", "/api/calls/t8/transcript", "service"))[0] == 403
    # a token in the URL is taken on the live WebSocket routes only
    token = tapi.secrets.token_for("operator")
    status, body = await tapi.call("GET", f"/api/calls/t8/transcript?access_token={token}", None)
    assert (status, body["error_id"]) == (401, "unauthorized")
