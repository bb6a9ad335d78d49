"""``GET /metrics``: Prometheus text from the app, counted from the events it stores and read from
Redis and the database at scrape time; only the service and admin roles read it."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_what_was_stored_and_read_the_rest_at_scrape(api: Any) -> None:
    ev = api.event
    events = [ev("m1", "arrived", 0), ev("m1", "queued", 1), ev("m1", "ringing", 2, seat="1201"),
              ev("m1", "answered", 12.5, seat="1201"),
              ev("m1", "transferred", 20, seat="1201", data={"kind": "blind", "target": "110"}),
              ev("m1", "ringing", 20.25, seat="1101"), ev("m1", "hangup", 40)]
    status, body = await api.post_events({"events": events})
    assert status == 200, body
    async with api.client.get("/metrics", headers=api.headers("service")) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        got = _samples(await resp.text())
    assert got[("hotline_call_events_total", (("service", "12345"), ("type", "ringing")))] == 2
    assert got[("hotline_queue_wait_seconds_count", (("service", "12345"),))] == 1
    assert got[("hotline_queue_wait_seconds_sum", (("service", "12345"),))] == 11.5
    assert got[("hotline_queue_wait_seconds_bucket", (("le", "15.0"), ("service", "12345")))] == 1
    assert got[("hotline_transfer_ring_seconds_count", ())] == 1
    assert abs(got[("hotline_transfer_ring_seconds_sum", ())] - 0.25) < 1e-6
    assert got[("hotline_exchange_backlog", ())] == 0
    assert got[("hotline_scheduler_lag_seconds", ())] == 0
    assert ("hotline_live_calls", ()) in got and ("hotline_console_sockets", ()) in got
    route = (("method", "POST"), ("route", "/api/events"), ("status", "200"))
    assert got[("hotline_http_request_seconds_count", route)] == 1
    for role in ("operator", "supervisor"):
        async with api.client.get("/metrics", headers=api.headers(role)) as resp:
            assert resp.status == 403, role
    async with api.client.get("/metrics") as resp:
        assert resp.status == 401


def test_json_logs_are_one_object_per_line() -> None:
    import json
    import logging

    from hotline.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "call %s: 转接失败\nnext",
                                   ("139****5678",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "ERROR" and out["logger"] == "app.x" and out["ts"].endswith("Z")
    assert out["message"] == "call 139****5678: 转接失败\nnext" and "ValueError: boom" in out["exception"]
