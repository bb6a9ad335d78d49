"""Routing engine: notable cases, data validation, reload, bad input, CLI, evaluation floors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from routing import MAX_TEXT_CHARS, Router, RoutingDataError, RoutingInputError, route
from routing.cli import main
from routing.evaluate import CASES_DIR, HELDOUT2_FILE, HELDOUT_FILE, evaluate, load_cases
from routing.rules import DATA_DIR


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(DATA_DIR, dst)
    return dst


# ------------------------------------------------------------------ behaviour
def test_paraphrased_suicide_risk_goes_to_110_first(router: Router) -> None:
    res = router.route("楼顶上站着一个人，看样子要往下跳", "12345")
    assert res.life_threat
    assert res.action == "transfer_110"
    assert res.category["code"] == "B5"
    assert any("往下跳" in r for r in res.reasons)
    at_110 = router.route("楼顶上站着一个人，看样子要往下跳", "110")
    assert at_110.action == "accept" and at_110.life_threat


def test_negation_not_a_fire_but_a_smoking_bin(router: Router) -> None:
    res = router.route("不是着火，是冒烟的垃圾桶", "12345")
    assert not res.life_threat
    assert res.action == "accept"
    assert res.category["code"] == "A02"
    assert any("negated by '不是'" in r for r in res.reasons)


def test_question_form_is_not_negation(router: Router) -> None:
    res = router.route("我也不知道是不是着火了，隔壁一直往外冒黑烟", "12345")
    assert res.life_threat and res.action == "transfer_110"
    assert "119" in res.linkage


def test_missing_manhole_cover_differs_by_platform(router: Router) -> None:
    text = "马路上井盖没了，一个大黑洞"
    assert router.route(text, "12345").action == "accept"
    assert router.route(text, "110").action == "handle_then_transfer"
    assert router.route(text, "110").category["code"] == "D6"


def test_part_c_is_handed_over_at_12345(router: Router) -> None:
    res = router.route("你们再不解决我的房子，我就在政府门口喝农药", "12345")
    assert res.action == "handover_110" and res.category["code"] == "C2"


def test_plain_12345_matter_is_accepted_and_transferred_from_110(router: Router) -> None:
    text = "我们小区的路灯坏了一个礼拜了，晚上黑漆漆的"
    assert router.route(text, "12345").action == "accept"
    assert router.route(text, "110").action == "transfer_12345"


def test_police_matter_is_transferred_from_12345(router: Router) -> None:
    res = router.route("我的电动车昨晚停在楼下被人偷了", "12345")
    assert res.action == "transfer_110" and res.category["code"] == "B1" and not res.life_threat


def test_outside_both_is_guided(router: Router) -> None:
    for at in ("12345", "110"):
        res = router.route("我想对社保局的处罚决定申请行政复议", at)
        assert res.action == "guide" and res.category["code"] == "X"


def test_asr_homophone_is_read_as_meant(router: Router) -> None:
    res = router.route("有人要跳搂了，就在七号楼", "12345")
    assert res.life_threat and res.action == "transfer_110"
    assert any("'跳搂' read as '跳楼'" in r for r in res.reasons)


def test_two_matters_in_one_call_each_with_its_action(router: Router) -> None:
    res = router.route("我们小区路灯坏了好几天了，另外我昨天在门口被人偷了钱包", "12345")
    got = {m.category["code"]: m.action for m in res.matters}
    assert got == {"A01": "accept", "B1": "transfer_110"}
    assert res.action == "transfer_110"  # the more urgent matter leads


def test_shared_matter_gets_three_way(router: Router) -> None:
    res = router.route("房东不退押金，还打我，把我东西扔出来了", "12345")
    assert res.action in ("three_way", "transfer_110")
    res = router.route("网上买东西被骗了，卖家收了钱把我拉黑，这算不算诈骗还是消费纠纷，定金也不退", "12345")
    assert res.action == "three_way"
    assert any("three-way" in r for r in res.reasons)


def test_linkage_and_slots(router: Router) -> None:
    res = router.route("刚才解放路口一辆车把一个骑电动车的撞飞了，两个人躺地上不动了，流了好多血", "110")
    assert res.life_threat and res.action == "accept"
    assert "120" in res.linkage
    assert "刚才" in res.slots["time"]
    assert any("解放路" in p for p in res.slots["place"])
    assert res.slots["injuries"]
    weapons = router.route("有个男的拿着菜刀在菜市场追着人砍", "12345").slots["weapons"]
    assert "菜刀" in weapons


def test_unmatched_chinese_stays_with_the_receiving_platform(router: Router) -> None:
    res = router.route("你好，请问现在几点了", "110")
    assert res.action == "accept" and res.category is None
    assert any("首接" in r for r in res.reasons)


def test_result_json_shape(router: Router) -> None:
    d = router.route("楼下的下水道堵了，污水往上反", "12345").to_json()
    assert set(d) >= {"action", "category", "alternatives", "life_threat", "linkage", "slots", "reasons",
                      "matters", "rules_version"}
    assert set(d["category"]) == {"code", "name_zh", "name_en"}
    assert d["alternatives"][0]["code"] == d["category"]["code"]
    assert set(d["slots"]) == {"place", "time", "people", "weapons", "injuries"}
    json.dumps(d, ensure_ascii=False)


def test_module_level_route_uses_default_rules() -> None:
    assert route("有人掉河里了，快来救人", at="12345").action == "transfer_110"


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("text", "error_id"),
    [("", "route.empty_text"), ("   \n\t ", "route.empty_text"), ("\x00\x01\x1b", "route.empty_text"),
     ("中" * (MAX_TEXT_CHARS + 1), "route.text_too_long"), (None, "route.invalid_text")],
)
def test_bad_text_is_a_clear_error(router: Router, text: object, error_id: str) -> None:
    with pytest.raises(RoutingInputError) as exc:
        router.route(text, "12345")  # type: ignore[arg-type]
    assert exc.value.error_id == error_id


def test_wrong_platform_is_a_clear_error(router: Router) -> None:
    with pytest.raises(RoutingInputError) as exc:
        router.route("路灯坏了", "119")
    assert exc.value.error_id == "route.invalid_at"


def test_non_chinese_and_control_characters_never_crash(router: Router) -> None:
    res = router.route("Hello, there is a fire!", "12345")
    assert res.action == "guide" and res.category is None and res.reasons
    res = router.route("路\x00灯\u200b坏了\x1b[31m好几天", "12345")
    assert res.action == "accept"
    long_text = "我们小区的路灯坏了。" * (MAX_TEXT_CHARS // 10)
    assert router.route(long_text[:MAX_TEXT_CHARS], "110").action == "transfer_12345"


# ------------------------------------------------------------------ data validation and reload
def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ('version: "2026', 'versio: "2026', "version", "missing"),
        ('actions: {"12345": accept, "110": transfer_12345}', 'actions: {"12345": handover_110, "110": x}',
         "categories[A01].actions.110", "not an action"),
        ('{re: "(红绿灯', '{re: "((红绿灯', "categories[D1].phrases[0].re", "bad regular expression"),
        ("linkage: [water]}", "linkage: [fire]}", "categories[A01].phrases[1].linkage", "unknown hotline"),
        ("  - code: X\n", "  - code: Y\n", "categories[Y]", "unknown code"),
        ("{p: 路灯, w: 2.5}", "{p: 路灯, w: -1}", "categories[A01].phrases[0].w", "weight"),
        ("{p: 路灯, w: 2.5}", "{p: 路灯, weight: 2}", "categories[A01].phrases[0]", "unknown keys"),
        ("{p: 路灯, w: 2.5}", "{p: 路灯, re: 灯}", "categories[A01].phrases[0]", "exactly one"),
    ],
)
def test_invalid_rules_name_file_key_and_problem(
    data_copy: Path, old: str, new: str, key: str, problem: str
) -> None:
    _edit(data_copy / "categories.yaml", old, new)
    with pytest.raises(RoutingDataError) as exc:
        Router(data_copy)
    assert exc.value.file == "categories.yaml"
    assert exc.value.key == key
    assert problem in exc.value.problem


def test_missing_category_and_yaml_syntax_are_reported(data_copy: Path) -> None:
    path = data_copy / "categories.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  - code: B7\n")
    path.write_text(text[:start] + text[text.index("  # ----", start):], encoding="utf-8")
    with pytest.raises(RoutingDataError, match="missing categories: B7"):
        Router(data_copy)
    path.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(RoutingDataError, match="YAML syntax error"):
        Router(data_copy)


def test_lexicon_and_userdict_errors(data_copy: Path) -> None:
    _edit(data_copy / "lexicon.yaml", "window: 6", "window: 99")
    with pytest.raises(RoutingDataError) as exc:
        Router(data_copy)
    assert (exc.value.file, exc.value.key) == ("lexicon.yaml", "negation.window")
    shutil.copy(DATA_DIR / "lexicon.yaml", data_copy / "lexicon.yaml")
    (data_copy / "userdict.txt").write_text("路灯 many n\n", encoding="utf-8")
    with pytest.raises(RoutingDataError) as exc:
        Router(data_copy)
    assert (exc.value.file, exc.value.key) == ("userdict.txt", "line 1")


def test_reload_swaps_rules_and_keeps_old_ones_on_error(data_copy: Path) -> None:
    r = Router(data_copy, model=False)  # the rules alone (the category model knows 穿山甲 already)
    text = "我家门口有只穿山甲，好像受伤了"
    assert r.route(text).category is None
    cat = data_copy / "categories.yaml"
    _edit(cat, '{re: "(野生动物|保护动物|', '{re: "(穿山甲|野生动物|保护动物|')
    _edit(cat, 'version: "2026.12-1"', 'version: "test-2"')
    assert r.reload() == "test-2"
    assert r.route(text).category["code"] == "A13"
    cat.write_text("categories: nope\n", encoding="utf-8")
    with pytest.raises(RoutingDataError):
        r.reload()
    assert r.version == "test-2"  # the old rules stay in service
    assert r.route(text).category["code"] == "A13"


# ------------------------------------------------------------------ CLI
def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, out, err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_route_text_and_jsonl(tmp_path: Path) -> None:
    rc, out, _ = _run(["route", "--at", "110", "马路上井盖没了"])
    assert rc == 0 and json.loads(out)["action"] == "handle_then_transfer"
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "路灯坏了"}\n{"text": "有人持刀抢劫", "at": "110"}\nnot json\n{"text": ""}\n',
                 encoding="utf-8")
    rc, out, _ = _run(["--jsonl", str(f)])
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 1
    assert [r.get("action") or r["error_id"] for r in rows] == [
        "accept", "accept", "route.invalid_json", "route.empty_text"]


def test_cli_errors_and_reload(data_copy: Path) -> None:
    rc, _, err = _run(["--at", "12345", " "])
    assert rc == 2 and "route.empty_text" in err
    rc, out, _ = _run(["reload", "--data", str(data_copy)])
    assert rc == 0 and json.loads(out)["categories"] == 35
    (data_copy / "lexicon.yaml").write_text("version: x\nnegation: 3\n", encoding="utf-8")
    rc, _, err = _run(["reload", "--data", str(data_copy)])
    assert rc == 2 and "lexicon.yaml: negation:" in err


# ------------------------------------------------------------------ evaluation floors (CI gate)
def test_evaluation_set_is_large_and_covers_every_category() -> None:
    cases = [c for f in ("cases.jsonl", HELDOUT_FILE, HELDOUT2_FILE) for c in load_cases(CASES_DIR / f)]
    assert len(cases) >= 300
    codes = {code for c in cases for code in c["category"]}
    from routing.rules import REQUIRED_CODES
    assert set(REQUIRED_CODES) <= codes
    assert any(len(c["expect"]["12345"]) > 1 for c in cases)  # ambiguous cases, every acceptable answer


@pytest.mark.parametrize("name", ["cases.jsonl", HELDOUT_FILE, HELDOUT2_FILE])
def test_evaluation_floors(router: Router, name: str) -> None:
    rep = evaluate(router, load_cases(CASES_DIR / name), name)
    assert rep.figures()["life_threat_recall"] == 1.0, "\n".join(m for m in rep.misses if "DANGER" in m)
    assert rep.failures() == [], "\n".join(rep.misses)


def test_cli_eval_floors_exit_code() -> None:
    rc, out, _ = _run(["eval", "--floors", "--set", "dev"])
    assert rc == 0 and "life-threat recall" in out and "floors met" in out
