"""Evaluation of the router on labelled cases (``tests/routing/*.jsonl``).

A case: {"id", "text", "category": [acceptable codes], "expect": {"12345": [actions], "110": [actions]},
"life_threat": bool, "matters": [[codes], ...] (optional)}. Every case is routed at both platforms.

Figures:
- action accuracy per platform: the predicted action is one of the acceptable ones;
- category accuracy: the predicted category is one of the acceptable codes;
- life-threat recall: of the cases labelled dangerous, the share (over both platforms) flagged as
  dangerous *and* sent the 110 way (12345: transfer_110 | handover_110; 110: accept |
  handle_then_transfer). A dangerous call must never stay at 12345;
- false escalation: of the cases whose acceptable answers at 12345 are all non-police (plain 12345
  matters), the share pushed to 110 (transfer_110 | handover_110);
- matters recall: of the multi-matter cases, the share where every expected matter was returned.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import PLATFORMS, TO_110, Router

CASES_DIR = Path(__file__).resolve().parent.parent / "tests" / "routing_cases"
DEV_FILE = "cases.jsonl"
HELDOUT_FILE = "heldout.jsonl"
HELDOUT2_FILE = "heldout2.jsonl"
SET_LABELS = {
    DEV_FILE: "dev (tuned on)",
    HELDOUT_FILE: "held-out 1 (seen: first run recorded in docs/routing.md)",
    HELDOUT2_FILE: "held-out 2 (seen: first run recorded in docs/routing.md)",
}
SAFE_AT_110 = frozenset({"accept", "handle_then_transfer"})

FLOORS = {
    "action_accuracy_12345": 0.90,
    "action_accuracy_110": 0.90,
    "category_accuracy": 0.80,
    "life_threat_recall": 1.0,
}
CEILINGS = {"false_escalation_rate": 0.05}


def load_cases(path: Path | str) -> list[dict[str, Any]]:
    cases = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                cases.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {n}: {exc}") from None
    return cases


@dataclass
class Report:
    name: str
    cases: int = 0
    action_ok: Counter[str] = field(default_factory=Counter)
    category_ok: int = 0
    life_total: int = 0
    life_ok: int = 0
    plain_total: int = 0
    plain_escalated: int = 0
    three_way: Counter[str] = field(default_factory=Counter)
    matters_total: int = 0
    matters_ok: int = 0
    confusion: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    linkage_total: int = 0  # expected hotlines (119/120/122/utilities), counted one by one
    linkage_ok: int = 0
    linkage_labelled: int = 0  # cases that list the hotlines they need (the corpus's), even none
    linkage_extra: int = 0     # hotlines named for those cases beyond what they list
    # per annex item (cases that name theirs): cases, action ok @12345, @110, dangers, dangers caught
    by_item: dict[str, Counter[str]] = field(default_factory=dict)
    # per kind of danger (cases that name theirs): dangers, dangers caught (over both platforms)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        n = self.cases or 1
        return {
            "action_accuracy_12345": self.action_ok["12345"] / n,
            "action_accuracy_110": self.action_ok["110"] / n,
            "category_accuracy": self.category_ok / n,
            "life_threat_recall": self.life_ok / self.life_total if self.life_total else 1.0,
            "false_escalation_rate": self.plain_escalated / self.plain_total if self.plain_total else 0.0,
            "matters_recall": self.matters_ok / self.matters_total if self.matters_total else 1.0,
            "linkage_recall": self.linkage_ok / self.linkage_total if self.linkage_total else 1.0,
            "linkage_extra_per_case": (self.linkage_extra / self.linkage_labelled
                                       if self.linkage_labelled else 0.0),
        }

    def failures(self) -> list[str]:
        f = self.figures()
        out = [f"{k} {f[k]:.1%} < floor {v:.0%}" for k, v in FLOORS.items() if f[k] < v]
        out += [f"{k} {f[k]:.1%} > ceiling {v:.0%}" for k, v in CEILINGS.items() if f[k] > v]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "cases": self.cases,
            "life_threat_cases": self.life_total,
            "plain_12345_cases": self.plain_total,
            "multi_matter_cases": self.matters_total,
            **{k: round(v, 4) for k, v in self.figures().items()},
            "three_way": dict(self.three_way),
            "by_annex_item": {k: dict(v) for k, v in sorted(self.by_item.items())},
            "by_danger_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
        }


def evaluate(router: Router, cases: list[dict[str, Any]], name: str) -> Report:
    rep = Report(name)
    rep.confusion = {p: Counter() for p in PLATFORMS}
    for case in cases:
        rep.cases += 1
        text, cid = case["text"], case.get("id", "?")
        dangerous = bool(case.get("life_threat"))
        plain = not (set(case["expect"]["12345"]) & TO_110)
        item = rep.by_item.setdefault(str(case["annex_item"]), Counter()) if case.get("annex_item") else None
        if item is not None:
            item["cases"] += 1
        kind = rep.by_kind.setdefault(str(case["danger_kind"]), Counter()) if dangerous and case.get(
            "danger_kind") else None
        for at in PLATFORMS:
            res = router.route(text, at)
            ok_actions = case["expect"][at]
            rep.confusion[at][(ok_actions[0], res.action)] += 1
            if res.action == "three_way":
                rep.three_way[at] += 1
            if res.action in ok_actions:
                rep.action_ok[at] += 1
                if item is not None:
                    item[f"action_{at}"] += 1
            else:
                rep.misses.append(f"{cid} @{at}: {res.action} not in {ok_actions}: {text}")
            if dangerous:
                rep.life_total += 1
                safe = res.action in TO_110 if at == "12345" else res.action in SAFE_AT_110
                if item is not None:
                    item["dangers"] += 1
                if kind is not None:
                    kind["dangers"] += 1
                if res.life_threat and safe:
                    rep.life_ok += 1
                    if item is not None:
                        item["dangers_caught"] += 1
                    if kind is not None:
                        kind["caught"] += 1
                else:
                    rep.misses.append(f"{cid} @{at}: DANGER MISSED ({res.action}): {text}")
            if at == "12345":
                if "linkage" in case:
                    rep.linkage_labelled += 1
                    rep.linkage_extra += len(set(res.linkage) - set(case["linkage"] or ()))
                for hotline in case.get("linkage") or ():
                    rep.linkage_total += 1
                    if hotline in res.linkage:
                        rep.linkage_ok += 1
                    else:
                        rep.misses.append(f"{cid}: linkage {hotline} not named: {text}")
                code = res.category["code"] if res.category else None
                if code in case["category"]:
                    rep.category_ok += 1
                else:
                    rep.misses.append(f"{cid}: category {code} not in {case['category']}: {text}")
                if plain:
                    rep.plain_total += 1
                    if res.action in TO_110:
                        rep.plain_escalated += 1
                        rep.misses.append(f"{cid}: FALSE ESCALATION {res.action}: {text}")
                if case.get("matters"):
                    rep.matters_total += 1
                    got = {m.category["code"] for m in res.matters if m.category}
                    if all(got & set(alts) for alts in case["matters"]):
                        rep.matters_ok += 1
                    else:
                        rep.misses.append(f"{cid}: matters {sorted(got)} vs {case['matters']}: {text}")
    return rep


_PARTS = "一二三四"
_NUMS = "一二三四五六七八九十"


def _item_order(name: str) -> tuple[int, int, str]:
    """一(二) < 一(十) < 一(十六) < 二(一) < ... < 不纳入."""
    part = _PARTS.find(name[:1])
    inner = name[2:-1] if name[1:2] == "(" else ""
    num = 0
    for ch in inner:
        num = (num or 1) * 10 if ch == "十" else num + _NUMS.find(ch) + 1
    return (part if part >= 0 else 9, num, name)


def format_report(rep: Report) -> str:
    f = rep.figures()
    lines = [
        f"## {rep.name}: {rep.cases} cases ({rep.life_total // 2} dangerous, {rep.plain_total} plain 12345, "
        f"{rep.matters_total} multi-matter), each routed at 12345 and at 110",
        "",
        "| figure | value |",
        "|---|---|",
        f"| action accuracy at 12345 | {f['action_accuracy_12345']:.1%} |",
        f"| action accuracy at 110 | {f['action_accuracy_110']:.1%} |",
        f"| category accuracy | {f['category_accuracy']:.1%} |",
        f"| life-threat recall | {f['life_threat_recall']:.1%} ({rep.life_ok}/{rep.life_total}) |",
        f"| false escalation (plain 12345 matters pushed to 110) | {f['false_escalation_rate']:.1%} "
        f"({rep.plain_escalated}/{rep.plain_total}) |",
        f"| multi-matter recall | {f['matters_recall']:.1%} ({rep.matters_ok}/{rep.matters_total}) |",
        f"| linkage recall (each expected hotline named) | {f['linkage_recall']:.1%} "
        f"({rep.linkage_ok}/{rep.linkage_total}) |",
        *([f"| hotlines named beyond those needed (per case that lists its own) | "
           f"{f['linkage_extra_per_case']:.2f} ({rep.linkage_extra}/{rep.linkage_labelled}) |"]
          if rep.linkage_labelled else []),
        "",
    ]
    if rep.by_item:
        lines += ["Per annex item (action right at 12345 / at 110; dangers caught over both platforms)", "",
                  "| annex item | cases | action @12345 | action @110 | dangers caught |",
                  "|---|---:|---:|---:|---:|"]
        for name in sorted(rep.by_item, key=_item_order):
            c = rep.by_item[name]
            danger = f"{c['dangers_caught']}/{c['dangers']}" if c["dangers"] else ""
            lines.append(f"| {name} | {c['cases']} | {c['action_12345'] / c['cases']:.0%} | "
                         f"{c['action_110'] / c['cases']:.0%} | {danger} |")
        lines.append("")
    if rep.by_kind:
        lines += ["Dangers caught per kind (over both platforms)", "", "| kind of danger | caught |",
                  "|---|---:|"]
        for name, c in sorted(rep.by_kind.items(), key=lambda kv: kv[1]["caught"] / kv[1]["dangers"]):
            lines.append(f"| {name} | {c['caught']}/{c['dangers']} ({c['caught'] / c['dangers']:.0%}) |")
        lines.append("")
    for at in PLATFORMS:
        conf = rep.confusion.get(at, Counter())
        gold = sorted({g for g, _ in conf})
        pred = sorted({p for _, p in conf})
        lines += [f"Confusion at {at} (rows: first acceptable action, columns: predicted)", ""]
        lines.append("| gold \\ predicted | " + " | ".join(pred) + " |")
        lines.append("|---" * (len(pred) + 1) + "|")
        for g in gold:
            lines.append(f"| {g} | " + " | ".join(str(conf[(g, p)] or "") for p in pred) + " |")
        lines.append("")
    return "\n".join(lines)
