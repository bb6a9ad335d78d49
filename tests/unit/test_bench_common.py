"""The check every benchmark's quick mode relies on: a row that measured nothing fails the run."""

from __future__ import annotations

import math

import pytest

from bench.common import NothingMeasured, percentile, require_measured, unmeasured, write_result


def test_a_good_row_passes() -> None:
    rows = {"*1": {"calls": 3, "measured": 3, "p50_ms": 3.9, "note": "ok"}}
    assert unmeasured(rows) == []
    require_measured(rows)


@pytest.mark.parametrize(("row", "expected"), [
    ({"calls": 3, "measured": 0, "p50_ms": math.nan}, "0 of 3 calls measured"),
    ({"samples": 0}, "samples is 0"),
    ({"routes_per_s": 0.0}, "routes_per_s is 0.0"),
    ({"p99_ms": None}, "p99_ms is None"),
    ({"p99_ms": math.inf}, "p99_ms is inf"),
    ({"status": "skipped: no PostgreSQL"}, "no figures (skipped: no PostgreSQL)"),
])
def test_a_row_that_measured_nothing_is_named(row: dict, expected: str) -> None:
    problems = unmeasured({"baseline ##": row, "ours": {"calls": 3, "measured": 3}})
    assert problems and all("baseline ##" in p for p in problems)
    assert any(expected in p for p in problems)
    with pytest.raises(NothingMeasured) as exc:
        require_measured({"baseline ##": row})
    assert exc.value.code != 0 and "bench.nothing_measured" in str(exc.value.code)


def test_no_rows_at_all_fails() -> None:
    assert unmeasured({}) == ["no rows at all"]


def test_percentile() -> None:
    assert math.isnan(percentile([], 0.5))
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_a_quick_run_writes_no_result(tmp_path) -> None:  # noqa: ANN001
    assert write_result("x", {"a": 1}, quick=True) is None
    out = write_result("x", {"a": "巴彦淖尔"}, quick=True, out=tmp_path / "x.json")
    assert out is not None and "巴彦淖尔" in out.read_text(encoding="utf-8")


def test_trouble_collects_lost_work_from_this_process_and_the_children(tmp_path) -> None:
    import logging

    from bench.common import Trouble

    child_log = tmp_path / "children.log"
    child_log.write_text("2026-12-02 10:00:00 INFO agi: READY\n"
                         "2026-12-02 10:00:01 WARNING agi: intake: Redis unavailable (ConnectionError: "
                         "Too many connections); skipping it for 1.0s\n", encoding="utf-8")
    trouble = Trouble(child_log)
    log = logging.getLogger("call_flows.live_state")
    with trouble.watching():
        log.warning("live state not updated for %s: %s", "a.1", "Too many connections")
        log.warning("AMI connection lost")  # a warning, but not lost work
        logging.getLogger("hotline.pubsub").info("redis publish failed")  # info: not counted
        logging.getLogger("app").error("anything at all")
    lines = trouble.take()
    assert len(lines) == 3, lines
    assert any("Too many connections" in line and "agi:" in line for line in lines)
    assert trouble.take() == []  # taken; the children's log is read from where it stopped
    with child_log.open("a", encoding="utf-8") as f:
        f.write("2026-12-02 10:00:02 WARNING transcription: tap t1 for caller of a.1 lost\n")
    assert len(trouble.take()) == 1
