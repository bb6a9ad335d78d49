"""The exchange interface as published: the committed JSON Schema is the models', messages survive
their own wire form, and signatures bind the timestamp, the nonce and every byte of the body."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from hotline.exchange import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Message,
    json_schema,
    new_message_id,
    signature_matches,
    signed_headers,
)

REPO = Path(__file__).resolve().parents[2]


def order_message(**order: object) -> Message:
    base = {"ticket": "12345-20261203-000001", "part": 1, "kind": "工单", "received_at": 1_760_000_000.0,
            "confidential": True, "request_kind": "help", "summary": "路灯不亮", "words": "路灯不亮",
            "urgency": "normal", "life_threat": False, "linkage": [], "due_at": 1_760_864_000.0,
            "handler": {"id": "110", "name": "110报警服务台"}}
    return Message.model_validate({"schema": "hotline.exchange/1", "message_id": new_message_id(),
                                   "kind": "order.dispatch", "sent_at": 1_760_000_001.0, "sender": "12345",
                                   "recipient": "110", "order": {**base, **order}})


def test_the_published_schema_is_generated_from_the_models() -> None:
    committed = json.loads((REPO / "docs/exchange/v1.schema.json").read_text(encoding="utf-8"))
    regenerate = "python -m hotline.exchange > docs/exchange/v1.schema.json"
    assert committed == json.loads(json.dumps(json_schema())), regenerate
    assert committed["$id"] == "hotline.exchange/1" and "order" in committed["properties"]


def test_a_message_without_optional_fields_survives_its_wire_form() -> None:
    msg = order_message()  # no call, no caller (confidential), no transcript
    assert Message.model_validate_json(msg.body()) == msg
    assert b'"caller"' not in msg.body()


@pytest.mark.parametrize("change", [
    {"sender": "110"},                                           # to itself
    {"kind": "part.step"},                                       # the wrong body for its kind
    {"schema": "hotline.exchange/2"},
    {"message_id": "not-hex"},
])
def test_bad_envelopes_are_refused(change: dict[str, object]) -> None:
    data = json.loads(order_message().body()) | change
    with pytest.raises(ValidationError):
        Message.model_validate_json(json.dumps(data))


def test_a_step_needs_what_it_says() -> None:
    base = {"schema": "hotline.exchange/1", "message_id": new_message_id(), "kind": "part.step",
            "sent_at": 1.0, "sender": "110", "recipient": "12345"}
    step = {"ticket": "12345-20261203-000001", "part": 1, "sender_ticket": "110-20261203-000001",
            "sender_part": 1, "state": "returned", "at": 2.0, "by": {"name": "a", "role": "operator"}}
    with pytest.raises(ValidationError, match="reason"):
        Message.model_validate({**base, "step": {**step, "step": "return"}})
    with pytest.raises(ValidationError, match="how long"):
        Message.model_validate({**base, "step": {**step, "step": "request_extension"}})
    ok = Message.model_validate({**base, "step": {**step, "step": "return",
                                                  "returned": {"reason": "非本单位职责"}}})
    assert Message.model_validate_json(ok.body()) == ok


def test_the_signature_binds_timestamp_nonce_and_body() -> None:
    body = order_message().body()
    h = signed_headers("key", "12345", body, time.time())
    ts, nonce, sig = h[TIMESTAMP_HEADER], h[NONCE_HEADER], h[SIGNATURE_HEADER]
    assert sig.startswith("v1=") and signature_matches("key", ts, nonce, body, sig)
    assert not signature_matches("other", ts, nonce, body, sig)
    assert not signature_matches("key", str(int(ts) + 1), nonce, body, sig)
    assert not signature_matches("key", ts, nonce + "x", body, sig)
    assert not signature_matches("key", ts, nonce, body.replace(b"\xe8\xb7\xaf", b"\xe8\xa1\x97"), sig)
    assert not signature_matches("key", ts, nonce, body, "v1=" + "0" * 64)
    assert not signature_matches("key", ts, nonce, body, "v1=非ascii")
    assert signed_headers("key", "12345", body, time.time())[NONCE_HEADER] != nonce  # never reused
