"""The prompts: rendered with espeak-ng and sox as 8 kHz mono WAV, a site's recordings kept, outside
text spoken only as text (never an argument, no control characters or markup)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from hotline.prompts import MAX_SPOKEN_CHARS, PromptError, load_prompts, spoken, synthesize, wav_seconds
from operations.prompts import render_prompts


def test_every_prompt_the_code_plays_has_a_text() -> None:
    texts = load_prompts().texts
    for name in ("rating", "rating-invalid", "rating-thanks", "callback-intro-12345", "callback-intro-110",
                 "callback-resolved", "callback-satisfied", "callback-invalid", "callback-bye",
                 "queue-callback-offer", "queue-callback-confirm", "queue-callback-unavailable"):
        assert texts[name].strip(), name
    assert texts["rating"] == "非常满意请按1，满意请按2，不满意请按3，非常不满意请按4。"
    assert {"date", "summary", "reply"} <= set(
        k.split("}")[0] for k in load_prompts().templates["callback-matter"].split("{")[1:])


async def test_rendered_as_8khz_mono_and_a_recording_is_kept(tmp_path: Path) -> None:
    first = await render_prompts(tmp_path)
    assert set(first.values()) == {"rendered"}
    with wave.open(str(tmp_path / "rating.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert 3 < wav_seconds(tmp_path / "rating.wav") < 15
    (tmp_path / "rating-thanks.wav").write_bytes(b"RIFF....a recording of the site's own voice")
    again = await render_prompts(tmp_path)
    assert again["rating-thanks"] == "recording" and again["rating"] == "kept"
    assert (tmp_path / "rating-thanks.wav").read_bytes().startswith(b"RIFF....a recording")


async def test_outside_text_is_only_ever_spoken(tmp_path: Path) -> None:
    hostile = "--help -w /etc/passwd <speak>[[x]]</speak>\\x00\n回复：路灯已修复" + "长" * 2000
    words = spoken(hostile)
    assert "<" not in words and "[" not in words and "\n" not in words and len(words) <= MAX_SPOKEN_CHARS
    out = await synthesize(hostile, tmp_path / "reply.wav")
    assert out.exists() and wav_seconds(out) > 1
    with pytest.raises(PromptError, match="nothing to say"):
        await synthesize("\x00\x01 <>", tmp_path / "empty.wav")
