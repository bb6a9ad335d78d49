"""Supporting evidence (``support: true`` phrases): a generic word of a 110 category (政府, 害怕,
城管, 业主) counts for it only beside another sign of it, so a plain 12345 matter that merely
mentions the government is not handed to the police."""

from __future__ import annotations

import pytest

from routing.engine import Router


@pytest.fixture(scope="module")
def rules() -> Router:
    return Router(model=False)


@pytest.mark.parametrize("text", [
    "我想知道我们这个老旧小区改造一共花了多少钱，政府能不能给我一份清单",
    "楼下商铺在拆墙，楼上住户都害怕",
    "城管把我们小区门口的垃圾桶收走了，现在垃圾没地方扔",
])
def test_a_generic_word_alone_decides_nothing(rules: Router, text: str) -> None:
    res = rules.route(text, "12345")
    assert res.action not in ("transfer_110", "handover_110"), res.reasons
    assert any("ignored: supports" in r for r in res.reasons)


def test_beside_a_real_sign_it_still_counts(rules: Router) -> None:
    res = rules.route("政府再不给我说法，我就去政府门口放火，说到做到", "12345")
    assert res.action == "handover_110" and res.life_threat
    assert not any("supports C2" in r for r in res.reasons)  # C2's own evidence is there
    assert any("supports C3" in r for r in res.reasons)  # 政府门口 alone is no gathering
