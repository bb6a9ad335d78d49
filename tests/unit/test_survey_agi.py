"""The rating and 回访 AGI routes against a scripted Asterisk: what each way of answering records
(one event, never an error), and that only the prompts' own files are ever named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agi.survey import AgiAnswer, SurveyService
from hotline.callback_site import SurveyTable
from hotline.contracts import CallEvent


class Script:
    """Answers AGI commands in order: a key as its ASCII code, '' for none, None for a hangup."""

    def __init__(self, answers: list[str | None]) -> None:
        self.answers = answers
        self.commands: list[str] = []

    async def command(self, line: str) -> AgiAnswer:
        self.commands.append(line)
        answer = self.answers.pop(0) if self.answers else ""
        if answer is None:
            return AgiAnswer(hangup=True)
        return AgiAnswer(result=str(ord(answer)) if answer else "0")


class Sink:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def emit(self, event: CallEvent) -> None:
        self.events.append(event)


def service(tmp_path: Path, sink: Sink) -> SurveyService:
    return SurveyService(sink=sink, survey=SurveyTable(timeout_s=3), prompts_dir="/srv/x/sounds",
                         local_sounds_dir=tmp_path, clock=lambda: 1000.0)


async def rate(tmp_path: Path, answers: list[str | None]) -> tuple[dict[str, Any], list[str]]:
    sink = Sink()
    script = Script(answers)
    await service(tmp_path, sink).rate(script, {"agi_uniqueid": "u.1"}, ("call-1",))
    [event] = sink.events
    assert event.event_id == "call-1:agi:rated" and event.linkedid == "call-1"
    return event.data, script.commands


async def test_a_key_during_the_prompt_is_the_rating(tmp_path: Path) -> None:
    data, commands = await rate(tmp_path, ["2", ""])
    assert (data["result"], data["rating"], data["satisfied"]) == ("rated", "satisfied", True)
    assert commands[0] == 'STREAM FILE /srv/x/sounds/rating "0123456789*#"'
    assert commands[1].startswith("STREAM FILE /srv/x/sounds/rating-thanks")


async def test_a_key_after_the_prompt_within_the_timeout(tmp_path: Path) -> None:
    data, commands = await rate(tmp_path, ["", "4", ""])
    assert (data["result"], data["rating"]) == ("rated", "very_unsatisfied")
    assert commands[1] == "WAIT FOR DIGIT 3000"


async def test_no_key_wrong_keys_and_hanging_up(tmp_path: Path) -> None:
    assert (await rate(tmp_path, ["", ""]))[0]["result"] == "no_key"
    data, commands = await rate(tmp_path, ["7", "", "9"])  # wrong, "invalid key" prompt, wrong again
    assert (data["result"], data["keys"], data["rating"]) == ("invalid", ["7", "9"], None)
    assert "rating-invalid" in commands[1]
    assert (await rate(tmp_path, [None]))[0]["result"] == "hung_up"
    assert (await rate(tmp_path, ["", None]))[0]["result"] == "hung_up"


async def test_a_hostile_call_id_is_not_used(tmp_path: Path) -> None:
    sink = Sink()
    await service(tmp_path, sink).rate(Script(["1"]), {"agi_uniqueid": "bad\nid"}, ('x"\n',))
    assert sink.events == []


async def survey(tmp_path: Path, answers: list[str | None], *, matter: bool = True,
                 args: tuple[str, ...] = ("42", "1", "12345")) -> tuple[dict[str, Any] | None, list[str]]:
    sink = Sink()
    if matter:
        (tmp_path / "callbacks").mkdir(exist_ok=True)
        (tmp_path / "callbacks" / "task-42.wav").write_bytes(b"RIFF")
    script = Script(answers)
    await service(tmp_path, sink).survey_call(script, {"agi_uniqueid": "cb-42-1"}, args)
    return (sink.events[0].data if sink.events else None), script.commands


async def test_survey_answers_typed_ahead_during_the_introduction(tmp_path: Path) -> None:
    data, commands = await survey(tmp_path, ["1", "3", ""])
    assert data and (data["resolved"], data["rating"], data["satisfied"], data["result"]) == (
        True, "unsatisfied", False, "rated")
    assert commands[0].startswith("STREAM FILE /srv/x/sounds/callback-intro-12345 ")
    assert "callback-satisfied" in commands[1]  # the matter was skipped: the caller already answered


async def test_survey_plays_the_matter_then_asks(tmp_path: Path) -> None:
    data, commands = await survey(tmp_path, ["", "", "", "2", "", "1", ""])
    assert [c.split()[2].rsplit("/", 1)[-1] for c in commands[:3]] == [
        "callback-intro-12345", "task-42", "callback-resolved"]
    assert data and (data["resolved"], data["rating"]) == (False, "very_satisfied")


async def test_survey_without_answers_and_with_a_hangup(tmp_path: Path) -> None:
    data, _ = await survey(tmp_path, ["", "", "", "", "", ""], matter=False)
    assert data and (data["rating"], data["result"]) == (None, "no_key")
    data, _ = await survey(tmp_path, [None])
    assert data and data["result"] == "hung_up"


async def test_survey_refuses_a_task_id_that_is_not_digits(tmp_path: Path) -> None:
    data, commands = await survey(tmp_path, ["1"], args=("42;Hangup", "1", "12345"))
    assert data is None and commands == []
