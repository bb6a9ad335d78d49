"""The learned danger detector (routing/model.py): its features, its file, how the engine uses it
(an override towards 110, explained in ``reasons``; the rules' danger stands whatever it says), and
that the committed weights are exactly what ``python -m routing.train`` gives from the corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from routing import Router
from routing.errors import RoutingDataError
from routing.model import MODEL_FILE, DangerModel, features
from routing.rules import DATA_DIR


def test_features_are_character_and_pinyin_grams_normalised() -> None:
    f = features("楼顶有人")
    assert {"c:楼", "c:楼顶", "c:楼顶有", "p:lou", "p:lou_ding", "p:lou_ding_you"} <= set(f)
    assert math.isclose(sum(v * v for v in f.values()), 1.0)
    assert features("abc 123") == {}
    assert features("楼顶有人") == f  # deterministic


def test_a_homophone_a_recognizer_writes_shares_the_pinyin_of_the_word_meant() -> None:
    meant, heard = features("家里着火了"), features("家里着伙了")
    assert "p:zhe_huo" in meant and "p:zhe_huo" in heard
    assert "c:着火" in meant and "c:着火" not in heard
    shared = sum(meant[k] * heard[k] for k in meant.keys() & heard.keys())
    assert shared > 0.6, "most of what the model sees is the same"


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    for name in ("categories.yaml", "lexicon.yaml", "userdict.txt"):
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    (tmp_path / MODEL_FILE.name).write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(RoutingDataError, match="not a danger model"):
        Router(tmp_path)


def _toy_model(tmp_path: Path, weights: dict[str, float], threshold: float = 0.5) -> Router:
    for name in ("categories.yaml", "lexicon.yaml", "userdict.txt"):
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    doc = {"format": "hotline-danger-model/1", "weights": weights, "bias": -2.0, "threshold": threshold}
    (tmp_path / MODEL_FILE.name).write_text(json.dumps(doc), encoding="utf-8")
    return Router(tmp_path)


def test_the_model_sends_a_danger_the_rules_miss_the_110_way_and_says_why(tmp_path: Path) -> None:
    text = "隔壁那个大爷好几天没出门了，门口的报纸堆了一摞"
    assert not Router(model=False).route(text, "12345").life_threat, "the rules alone miss it"
    router = _toy_model(tmp_path, {"c:好几天": 30.0, "c:没出门": 40.0, "p:bao_zhi": 10.0})
    res = router.route(text, "12345")
    assert res.life_threat and res.action in ("transfer_110", "handover_110")
    assert any(r.startswith("model: danger") and "没出门" in r for r in res.reasons), res.reasons
    at_110 = router.route(text, "110")
    assert at_110.action in ("accept", "handle_then_transfer") and at_110.life_threat


def test_the_rules_danger_stands_whatever_the_model_says(tmp_path: Path) -> None:
    router = _toy_model(tmp_path, {"c:楼": -50.0})  # a model that would never say danger here
    res = router.route("楼顶上站着一个人，看样子要往下跳", "12345")
    assert res.life_threat and res.action in ("transfer_110", "handover_110")
    assert any(r.startswith("model: no danger") for r in res.reasons)


def test_a_plain_matter_the_model_does_not_flag_is_unchanged(tmp_path: Path) -> None:
    text = "我们这条街的路灯晚上全不亮"
    plain = _toy_model(tmp_path, {"c:救": 5.0}).route(text, "12345")
    rules = Router(model=False).route(text, "12345")
    assert plain.action == rules.action == "accept" and plain.reasons == rules.reasons


def test_rules_alone_has_no_model() -> None:
    assert Router(model=False).danger_model is None


def test_the_committed_models_are_what_training_gives(tmp_path: Path) -> None:
    from routing.model import CATEGORY_FILE, CategoryModel
    from routing.train import main, same_category

    out, cat_out, link_out = tmp_path / "danger.json", tmp_path / "category.npz", tmp_path / "linkage.npz"
    assert main(["--out", str(out), "--category-out", str(cat_out), "--linkage-out", str(link_out)]) == 0
    assert out.read_text(encoding="utf-8") == MODEL_FILE.read_text(encoding="utf-8"), (
        "routing/data/danger_model.json is stale: run python -m routing.train and commit it")
    import numpy as np

    with np.load(cat_out, allow_pickle=False) as fresh:
        assert same_category({k: fresh[k] for k in fresh.files}, CATEGORY_FILE), (
            "routing/data/category_model.npz is stale: run python -m routing.train and commit it")
    from routing.model import LINKAGE_FILE, LinkageModel

    with np.load(link_out, allow_pickle=False) as fresh:
        assert same_category({k: fresh[k] for k in fresh.files}, LINKAGE_FILE), (
            "routing/data/linkage_model.npz is stale: run python -m routing.train and commit it")
    linkage = LinkageModel.load(LINKAGE_FILE)
    assert {"119", "120",
            "122"} <= set(linkage.hotlines) and all(0 < t < 1 for t in linkage.thresholds.values())
    model = DangerModel.load(MODEL_FILE)
    assert 0.0 < model.threshold < 1.0 and len(model.weights) > 1000
    category = CategoryModel.load(CATEGORY_FILE)
    assert len(category.classes) >= 30 and 0.0 < category.rules_weight < 1.0


@pytest.mark.parametrize("text", ["喂", "你好", "喂你好 听得见吗"])
def test_a_greeting_has_no_category_and_stays_where_it_is(text: str) -> None:
    router = Router()
    for at in ("12345", "110"):
        res = router.route(text, at)
        assert res.category is None and res.action == "accept" and not res.life_threat, (at, res.reasons)


def test_the_category_model_ranks_what_the_rules_do_not_know() -> None:
    text = "我家门口有只穿山甲，好像受伤了"  # no rule names the pangolin
    assert Router(model=False).route(text).category is None
    res = Router().route(text, "12345")
    assert res.category is not None and res.category["code"] == "A13" and res.action == "accept"
    assert any(r.startswith("model: category A13") for r in res.reasons)


def test_the_linkage_model_names_what_the_rules_miss_and_says_so() -> None:
    from routing.engine import Router

    router = Router()
    # no rule names 122 for a crash told without the word 车祸; the model does, and explains itself
    res = router.route("两辆车在路口撞一块了，司机下不来车，腿卡住了", "12345")
    assert "122" in res.linkage, res
    assert any(r.startswith("model: linkage 122") for r in res.reasons), res.reasons
    plain = router.route("请问社保卡补办需要带什么材料", "12345")
    assert plain.linkage == [], plain.linkage
