"""routing.cv adds the folds' reports up exactly (the arithmetic of the engine-level estimate)."""

from __future__ import annotations

from collections import Counter

from routing.cv import merge
from routing.evaluate import Report


def test_merge_adds_every_count() -> None:
    a = Report("fold 1", cases=10, action_ok=Counter({"12345": 9, "110": 8}), category_ok=7, life_total=8,
               life_ok=6, plain_total=5, plain_escalated=1, linkage_total=4, linkage_ok=3,
               linkage_labelled=10, linkage_extra=2, misses=["x"])
    b = Report("fold 2", cases=20, action_ok=Counter({"12345": 18, "110": 20}), category_ok=15, life_total=10,
               life_ok=10, plain_total=15, plain_escalated=2, linkage_total=6, linkage_ok=6,
               linkage_labelled=20, linkage_extra=1, misses=["y"])
    m = merge([a, b]).figures()
    assert m["action_accuracy_12345"] == 27 / 30 and m["action_accuracy_110"] == 28 / 30
    assert m["life_threat_recall"] == 16 / 18 and m["false_escalation_rate"] == 3 / 20
    assert m["linkage_recall"] == 9 / 10 and m["linkage_extra_per_case"] == 3 / 30
    assert merge([a, b]).misses == ["x", "y"]
