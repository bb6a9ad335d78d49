"""Work-order drafting from the caller's words: summary, address, district, dispatch, ticket number."""

from __future__ import annotations

import pytest

from app.work_orders.dispatch import DEPARTMENTS, dispatch_for, district_of, known_districts
from app.work_orders.drafting import caller_text, draft_fields, first_sentence, summary_of, ticket_number
from routing.engine import MAX_TEXT_CHARS, Router
from routing.rules import REQUIRED_CODES

SITE_PHRASES = ["临河区", "五原县", "磴口县", "杭锦后旗", "乌拉特前旗", "胜利路", "新华街", "朔方路"]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


def test_ticket_numbers_are_readable_and_use_the_local_date() -> None:
    # 2026-11-29 17:00 UTC is already the 30th in China (UTC+8); 15:00 UTC is still the 29th
    assert ticket_number("12345", 42, 1_795_971_600.0) == "12345-20261130-000042"
    assert ticket_number("110", 7, 1_795_964_400.0) == "110-20261129-000007"


def test_caller_text_ends_each_final_as_a_sentence_and_keeps_the_latest_words() -> None:
    assert caller_text(["喂你好", "  ", "路灯坏了！", "在胜利路"]) == "喂你好。路灯坏了！在胜利路。"
    long = caller_text(["早" * MAX_TEXT_CHARS, "楼顶上站着一个人"])
    assert len(long) == MAX_TEXT_CHARS and long.endswith("楼顶上站着一个人。")


def test_summary_skips_greetings_and_is_short() -> None:
    assert first_sentence(["喂，你好", "嗯，那个，我们小区停电了。冰箱坏了"]) == "我们小区停电了"
    summary = summary_of(["我们这条街的路灯" + "很久" * 40], "公共设施类")
    assert summary.startswith("公共设施类：我们这条街的路灯") and summary.endswith("…")
    assert len(summary) == len("公共设施类：") + 60
    assert summary_of(["路灯坏了"], None) == "路灯坏了"


@pytest.mark.parametrize(("text", "district"), [
    ("我家在临河区胜利路", "临河区"),
    ("巴彦淖尔市临河区新华街", "临河区"),
    ("我在乌拉特中旗这边", "乌拉特中旗"),     # not in the site's list: read from the words
    ("住在东城区", "东城区"),
    ("昨天临河区有人闹事", "临河区"),          # the site's name wins over a longer guess
    ("我们小区门口", None),
    ("去社区问问", None),
    ("我们县里", None),
])
def test_district_from_the_callers_words(text: str, district: str | None) -> None:
    assert district_of([text], known_districts(SITE_PHRASES)) == district


def test_dispatch_only_when_110_must_act() -> None:
    assert dispatch_for("accept", False, "A01", ["临河区"]) == []
    assert dispatch_for("three_way", False, "D2", ["临河区"]) == []
    for action, danger in (("handover_110", False), ("transfer_110", False), ("accept", True)):
        to = dispatch_for(action, danger, "C1", ["五原县"])
        assert [d["to"] for d in to] == ["110", "local_government", "department"]
        assert to[1]["name"] == "五原县人民政府" and to[2]["name"].startswith("卫生健康委员会")
    unknown = dispatch_for("handover_110", True, None, ["楼顶上"])
    assert unknown[1]["name"] is None and unknown[2]["name"] is None  # the operator sees what is missing


def test_every_routing_category_but_x_has_a_department() -> None:
    assert set(DEPARTMENTS) == set(REQUIRED_CODES) - {"X"}


def test_draft_from_real_sentences(router: Router) -> None:
    finals = ["我家在临河区胜利路", "楼顶上站着一个人，看样子要往下跳"]
    d = draft_fields(router.route(caller_text(finals), "12345"), finals, known_districts(SITE_PHRASES))
    assert d["life_threat"] is True and d["action"] in ("transfer_110", "handover_110")
    assert d["caller_segments"] == 2 and d["rules_version"] == router.version
    assert "胜利路" in (d["address"] or "")
    assert [x["to"] for x in d["dispatch"]] == ["110", "local_government", "department"]
    assert d["dispatch"][1]["district"] == "临河区"
    assert d["summary"].endswith("我家在临河区胜利路")
    calm = ["你好，我们这条街的路灯晚上全不亮，走夜路心里发毛"]
    d = draft_fields(router.route(caller_text(calm), "12345"), calm)
    assert (d["category_code"], d["action"], d["life_threat"], d["dispatch"]) == ("A01", "accept", False, [])
    assert d["summary"] == "公共设施类：我们这条街的路灯晚上全不亮，走夜路心里发毛"
