"""The routing corpus: every case is well formed, and the frozen test split is exactly what
``frozen_test.json`` says (no test case changed, moved to dev, or dropped without that file changing
in the same commit)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from routing.corpus import (
    FROZEN_TEST_MANIFEST,
    batch_files,
    case_digest,
    in_test,
    load_corpus,
    load_frozen2,
    manifest,
    split,
)
from routing.rules import load_rules

CODES = set(load_rules(None).categories)
ACTIONS = {"12345": {"accept", "transfer_110", "handover_110", "three_way", "guide"},
           "110": {"accept", "transfer_12345", "handle_then_transfer", "three_way", "guide"}}
HOTLINES = {"119", "120", "122", "water", "power", "gas", "heating"}
VOICES = {"plain", "elderly", "angry", "confused", "rambling", "dialect", "smalltalk", "asr"}
DANGER_KINDS = {"violence_weapon", "threat_self", "threat_others", "fire", "water", "heights", "gas",
                "crowd", "missing_vulnerable", "followed_trapped", "not_seen", "traffic", "medical", "other"}
ANNEX_ITEM = re.compile(r"(一\((十[一二三四五六]?|[一二三四五六七八九])\)|二\([一二三四五六七]\)"
                        r"|三\([一二三四]\)|四\([一二三四五六七]\)|不纳入)")
CORPUS = load_corpus()


def test_there_is_a_corpus_in_independent_batches() -> None:
    assert len(batch_files()) >= 1 and len(CORPUS) >= 200
    ids = Counter(str(c["id"]) for c in CORPUS)
    assert [i for i, n in ids.items() if n > 1] == []


@pytest.mark.parametrize("case", CORPUS + load_frozen2(), ids=lambda c: str(c["id"]))
def test_every_case_is_well_formed(case: dict) -> None:
    assert isinstance(case["text"], str) and case["text"].strip()
    assert case["category"] and set(case["category"]) <= CODES | {"X"}, case["category"]
    for at, allowed in ACTIONS.items():
        assert case["expect"][at] and set(case["expect"][at]) <= allowed, (at, case["expect"][at])
    assert isinstance(case["life_threat"], bool)
    assert set(case.get("linkage") or ()) <= HOTLINES
    assert ANNEX_ITEM.fullmatch(case["annex_item"]), case["annex_item"]
    assert case["voice"] in VOICES
    if case["life_threat"]:
        assert case["danger_kind"] in DANGER_KINDS
        # a danger may never be answered by keeping it at 12345
        assert set(case["expect"]["12345"]) <= {"transfer_110", "handover_110", "three_way"}, case["expect"]
    else:
        assert case.get("danger_kind") is None


def test_the_split_is_by_id_and_about_three_in_ten() -> None:
    dev, test = split(CORPUS)
    assert len(dev) + len(test) == len(CORPUS)
    assert 0.2 < len(test) / len(CORPUS) < 0.4
    assert all(in_test(str(c["id"])) for c in test) and not any(in_test(str(c["id"])) for c in dev)


def test_the_frozen_test_split_is_unchanged() -> None:
    frozen = json.loads(FROZEN_TEST_MANIFEST.read_text(encoding="utf-8"))
    _, test = split(CORPUS)
    now = manifest(test)
    dropped = sorted(set(frozen["ids"]) - set(now["ids"]))
    added = sorted(set(now["ids"]) - set(frozen["ids"]))
    changed = sorted(i for i in set(frozen["ids"]) & set(now["ids"]) if frozen["ids"][i] != now["ids"][i])
    assert (dropped, added, changed) == ([], [], []), (
        "the frozen test split changed: re-freeze (python -m routing.corpus --freeze) only to add a new "
        "batch or fix a label, in its own commit that says why")
    assert frozen["digest"] == now["digest"]


def test_the_second_frozen_set_is_unchanged_and_never_in_the_corpus() -> None:
    from routing.corpus import FROZEN2_MANIFEST, load_frozen2

    second = load_frozen2()
    frozen = json.loads(FROZEN2_MANIFEST.read_text(encoding="utf-8"))
    assert manifest(second)["ids"] == frozen["ids"] and manifest(second)["digest"] == frozen["digest"], (
        "the second frozen set changed: it is re-frozen (python -m routing.corpus --freeze2) only to add "
        "a batch, in its own commit that says why")
    assert len(second) >= 400 and not {c["id"] for c in second} & {c["id"] for c in CORPUS}
    assert {c["batch"] for c in second}.isdisjoint({c["batch"] for c in CORPUS})


def test_a_digest_covers_the_words_and_the_labels() -> None:
    case = dict(CORPUS[0])
    before = case_digest(case)
    assert case_digest({**case, "voice": "angry"}) == before  # not a label
    assert case_digest({**case, "text": case["text"] + "。"}) != before
    assert case_digest({**case, "life_threat": not case["life_threat"]}) != before
