"""What a caller says with keys: the end-of-call rating (一次一评) and a work order's 回访 survey.

Both run as interactive FastAGI routes: they speak the AGI command protocol with Asterisk for as
long as the prompts last, then report what was pressed to the event sink (one ``rated`` or
``surveyed`` event, whose id makes a replay harmless). Every way a caller can fail to answer is a
recorded result, never an error: no key within the timeout (``no_key``), a wrong key on every try
(``invalid``), hanging up (``hung_up``). A prompt is played with every key as an escape digit, so a
caller who knows the questions may answer before the prompt ends; the timeout starts after it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agi.protocol import quote_value
from hotline.callback_site import SATISFIED_RATINGS, SurveyTable
from hotline.contracts import LINKEDID_RE, CallEvent, CallEventType
from hotline.names import CALLBACK_ID_PREFIX

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
TASK_RE = re.compile(r"^[0-9]{1,18}\Z")
ATTEMPT_RE = re.compile(r"^[0-9]{1,2}\Z")
PLATFORM_RE = re.compile(r"^(12345|110)\Z")
RESOLVED_KEYS = {"1": True, "2": False}  # the prompt callback-resolved says so

POSITION_RE = re.compile(r"^[0-9]{1,5}\Z")
QUEUE_CALLBACK_PATH = "/api/callbacks/requests"

# results of one question (and of the rating as a whole)
RATED, NO_KEY, INVALID, HUNG_UP = "rated", "no_key", "invalid", "hung_up"


class Sink(Protocol):
    def emit(self, event: CallEvent) -> None: ...

    async def ask(self, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int | None, Any]: ...


@dataclass(frozen=True)
class AgiAnswer:
    """One answer of Asterisk to one AGI command."""

    result: str = ""
    hangup: bool = False


class AgiSession(Protocol):
    async def command(self, line: str) -> AgiAnswer: ...


class PanoramiskSession:
    """An :class:`AgiSession` over panoramisk's FastAGI request."""

    def __init__(self, request: Any) -> None:
        self._request = request

    async def command(self, line: str) -> AgiAnswer:
        try:
            answer = await self._request.send_command(line)
        except (ConnectionError, OSError, ValueError):
            return AgiAnswer(hangup=True)
        if answer.get("error") in ("AGIResultHangup", "AGIAppError"):
            return AgiAnswer(hangup=True)
        if "error" in answer:
            log.warning("AGI command %s answered %s", line.split(" ", 2)[:2], answer.get("error"))
            return AgiAnswer()
        value = answer.get("result", ("", ""))
        return AgiAnswer(result=str(value[0] if isinstance(value, tuple) else value))


@dataclass
class _Asked:
    result: str
    key: str | None = None
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SurveyService:
    """The prompts' directory as Asterisk sees it, where a callback's own recording is on this host,
    the site's rating scale, and the sink the answers go to."""

    sink: Sink | None
    survey: SurveyTable
    prompts_dir: str            # absolute, as Asterisk sees it
    local_sounds_dir: Path      # the same directory from this host
    clock: Any = time.time

    def _file(self, name: str) -> str:
        return f"{self.prompts_dir}/{name}"

    async def _play(self, s: AgiSession, name: str, escape: str = ALL_KEYS) -> AgiAnswer:
        """Play a prompt; ``result`` is the key that cut it short ('' if none)."""
        ans = await s.command(f"STREAM FILE {self._file(name)} {quote_value(escape)}")
        if ans.hangup:
            return ans
        return AgiAnswer(result=_key_of(ans.result))

    async def _ask(self, s: AgiSession, prompt: str, valid: Mapping[str, object], invalid_prompt: str,
                   typed_ahead: str = "") -> _Asked:
        asked = _Asked(result=NO_KEY)
        for attempt in range(1, self.survey.tries + 1):
            key = typed_ahead if attempt == 1 else ""
            if not key:
                played = await self._play(s, prompt)
                if played.hangup:
                    asked.result = HUNG_UP
                    return asked
                key = played.result
            if not key:
                waited = await s.command(f"WAIT FOR DIGIT {self.survey.timeout_s * 1000}")
                if waited.hangup:
                    asked.result = HUNG_UP
                    return asked
                key = _key_of(waited.result)
            if not key:
                asked.result = NO_KEY
                return asked
            asked.keys.append(key)
            if key in valid:
                asked.result, asked.key = RATED, key
                return asked
            asked.result = INVALID
            if attempt < self.survey.tries:
                if (await self._play(s, invalid_prompt, "")).hangup:
                    asked.result = HUNG_UP
                    return asked
        return asked

    # --- 一次一评 ---------------------------------------------------------------------------------
    async def rate(self, s: AgiSession, env: Mapping[str, str], args: tuple[str, ...]) -> dict[str, Any]:
        """``agi://.../rating,${HOTLINE_LINKEDID}``: one key on the site's scale."""
        linkedid = (_valid(args[0] if args else "", LINKEDID_RE)
                    or _valid(env.get("agi_uniqueid", ""), LINKEDID_RE))
        started = float(self.clock())
        asked = await self._ask(s, "rating", self.survey.scale, "rating-invalid")
        rating = self.survey.scale.get(asked.key or "")
        if asked.result == RATED:
            await self._play(s, "rating-thanks", "")
        if linkedid and self.sink is not None:
            self.sink.emit(CallEvent(
                event_id=f"{linkedid}:agi:rated", linkedid=linkedid, type=CallEventType.RATED,
                at=started, source="agi",
                data={"result": asked.result, "rating": rating, "key": asked.key, "keys": asked.keys,
                      "satisfied": (rating in SATISFIED_RATINGS) if rating else None,
                      "seconds": round(float(self.clock()) - started, 3)}))
        return {}

    # --- 回访 -------------------------------------------------------------------------------------
    async def survey_call(self, s: AgiSession, env: Mapping[str, str],
                          args: tuple[str, ...]) -> dict[str, Any]:
        """``agi://.../survey,<task>,<attempt>,<platform>``: who calls, the matter and its reply, then
        two questions (resolved? satisfied?)."""
        task = _valid(args[0] if args else "", TASK_RE)
        attempt = _valid(args[1] if len(args) > 1 else "", ATTEMPT_RE) or "1"
        platform = _valid(args[2] if len(args) > 2 else "", PLATFORM_RE) or "12345"
        if not task:
            log.warning("survey: no valid task id on the call; nothing asked")
            return {}
        linkedid = _valid(env.get("agi_uniqueid", ""), LINKEDID_RE) or f"{CALLBACK_ID_PREFIX}{task}-{attempt}"
        started = float(self.clock())
        answers: dict[str, Any] = {"resolved": None, "rating": None, "keys": []}
        result = RATED
        typed = ""
        for name in (f"callback-intro-{platform}", f"callbacks/task-{task}"):
            if name.startswith("callbacks/") and not (self.local_sounds_dir / f"{name}.wav").exists():
                continue  # the matter could not be synthesized: the questions still make sense
            played = await self._play(s, name)
            if played.hangup:
                result = HUNG_UP
                break
            if played.result:
                typed = played.result
                break
        if result != HUNG_UP:
            q1 = await self._ask(s, "callback-resolved", RESOLVED_KEYS, "callback-invalid", typed)
            answers["keys"] += q1.keys
            answers["resolved_result"] = q1.result
            if q1.result == RATED:
                answers["resolved"] = RESOLVED_KEYS[q1.key or ""]
            result = q1.result if q1.result == HUNG_UP else RATED
            if result != HUNG_UP:
                q2 = await self._ask(s, "callback-satisfied", self.survey.scale, "callback-invalid")
                answers["keys"] += q2.keys
                answers["rating_result"] = q2.result
                result = q2.result
                if q2.result == RATED:
                    answers["rating"] = self.survey.scale[q2.key or ""]
                    await self._play(s, "callback-bye", "")
        rating = answers["rating"]
        if self.sink is not None:
            self.sink.emit(CallEvent(
                event_id=f"{linkedid}:agi:surveyed", linkedid=linkedid, type=CallEventType.SURVEYED,
                at=started, source="agi",
                data={"task": int(task), "attempt": int(attempt), "result": result, **answers,
                      "satisfied": (rating in SATISFIED_RATINGS) if rating else None,
                      "seconds": round(float(self.clock()) - started, 3)}))
        return {}


    async def register_queue_callback(self, args: tuple[str, ...], timeout_s: float = 1.5) -> bool:
        """排队回拨: ask the backend to store the callback (and hold the caller's place)."""
        linkedid = _valid(args[0] if args else "", LINKEDID_RE)
        position = _valid(args[1] if len(args) > 1 else "", POSITION_RE)
        if not linkedid or self.sink is None:
            return False
        status, answer = await self.sink.ask(QUEUE_CALLBACK_PATH, {
            "linkedid": linkedid, "position": int(position) if position else 1}, timeout_s)
        if status != 201:
            log.warning("queue callback for %s not registered: %s %s", linkedid, status,
                        (answer or {}).get("error_id") if isinstance(answer, dict) else answer)
        return status == 201


def _key_of(result: str) -> str:
    """STREAM FILE and WAIT FOR DIGIT answer with the key's ASCII code (0: none)."""
    try:
        code = int(result)
    except ValueError:
        return ""
    ch = chr(code) if 0 < code < 128 else ""
    return ch if ch and ch in ALL_KEYS else ""


def _valid(value: str, pattern: re.Pattern[str]) -> str:
    value = value.strip()
    return value if pattern.fullmatch(value) else ""
