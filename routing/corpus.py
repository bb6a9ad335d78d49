"""The routing corpus (``tests/routing_cases/corpus/batch_*.jsonl``) and its frozen test split.

Each batch was written by a separate author from the annex alone (never seeing the engine, its
rules or the other batches), in the voices callers use and as a speech recognizer renders them.
Every case carries ``annex_item`` (the annex's numbering: ``一(十)``, ``二(五)``, ``三(一)``,
``四(七)``, or ``不纳入``), ``voice`` and, for dangers, ``danger_kind``.

The split is fixed by the case's id (sha256 of ``id``; three in ten go to *test*), so it does not
depend on the order of the files or on what else is added. The test split is **frozen**: its ids,
texts and labels are listed with a digest in ``FROZEN_TEST_MANIFEST`` (``frozen_test.json``), which
``tests/unit/test_routing_corpus.py`` checks, so a test case cannot change, move to dev or disappear
without that file changing in the same commit. Nobody reads its misses to change the rules or the
model; its figures are reported as they come, and the first run's are kept in the README.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .evaluate import CASES_DIR, load_cases

CORPUS_DIR = CASES_DIR / "corpus"
FROZEN_TEST_MANIFEST = CORPUS_DIR / "frozen_test.json"
# The second frozen set: whole batches written later by new independent authors, outside the corpus
# folder so that nothing that reads the corpus (training above all) can read them. Every case is test.
FROZEN2_DIR = CASES_DIR / "frozen2"
FROZEN2_MANIFEST = FROZEN2_DIR / "frozen_test.json"
TEST_SHARE_IN_10 = 3

ANNEX_PARTS = ("一", "二", "三", "四", "不纳入")
LABEL_FIELDS = ("text", "category", "expect", "life_threat", "linkage", "annex_item")


def batch_files(corpus_dir: Path = CORPUS_DIR) -> list[Path]:
    return sorted(corpus_dir.glob("batch_*.jsonl"))


def load_corpus(corpus_dir: Path = CORPUS_DIR) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in batch_files(corpus_dir):
        for case in load_cases(path):
            case.setdefault("batch", path.stem)
            cases.append(case)
    return cases


def in_test(case_id: str) -> bool:
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return digest[0] % 10 < TEST_SHARE_IN_10


def split(cases: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(dev, test)."""
    dev: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for case in cases:
        (test if in_test(str(case["id"])) else dev).append(case)
    return dev, test


def case_digest(case: dict[str, Any]) -> str:
    """What may not change in a frozen case: its words and its labels."""
    labels = {k: case.get(k) for k in LABEL_FIELDS}
    blob = json.dumps(labels, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def manifest(test: Iterable[dict[str, Any]]) -> dict[str, Any]:
    cases = {str(c["id"]): case_digest(c) for c in test}
    whole = hashlib.sha256(json.dumps(cases, sort_keys=True).encode()).hexdigest()
    return {"about": "the frozen routing test split: ids and digests of text + labels; see routing/corpus.py",
            "cases": len(cases), "digest": whole, "ids": cases}


def part_of(annex_item: str | None) -> str:
    if not annex_item:
        return "?"
    return next((p for p in ANNEX_PARTS if annex_item.startswith(p)), "?")


def load_frozen2() -> list[dict[str, Any]]:
    """The second frozen set (every case of it is test; none is ever trained or tuned on)."""
    return load_corpus(FROZEN2_DIR) if FROZEN2_DIR.is_dir() else []


def write_manifest(path: Path = FROZEN_TEST_MANIFEST) -> dict[str, Any]:
    """Freeze the test split as it is now (``python -m routing.corpus --freeze``; ``--freeze2`` for the
    second frozen set, all of whose cases are test)."""
    test = load_frozen2() if path == FROZEN2_MANIFEST else split(load_corpus(path.parent))[1]
    doc = manifest(test)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return doc


if __name__ == "__main__":
    import sys

    if sys.argv[1:] in (["--freeze"], ["--freeze2"]):
        d = write_manifest(FROZEN2_MANIFEST if sys.argv[1] == "--freeze2" else FROZEN_TEST_MANIFEST)
        print(f"froze {d['cases']} test cases, digest {d['digest'][:16]}")
    else:
        dev_cases, test_cases = split(load_corpus())
        print(f"corpus: {len(dev_cases)} dev, {len(test_cases)} test (frozen in {FROZEN_TEST_MANIFEST.name})")
