"""The prompts callers hear, and the one way text becomes a sound file Asterisk plays.

The texts live in ``hotline/prompts.toml``. :func:`synthesize` turns text into signed-linear 8 kHz
mono WAV with espeak-ng (voice ``cmn``) and sox, with no shell and the text on stdin (a work order's
reply is outside text: it never becomes an argument). Rendering the fixed prompts is
``operations.prompts``; the app synthesizes a callback's matter and reply when it places the call.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("prompts.toml")
PROMPT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}\Z")
VOICE = "cmn"
SPEED_WPM = 220
MAX_SPOKEN_CHARS = 600           # a reply read out over the phone: the rest is in the order
SYNTH_TIMEOUT_S = 20.0
# Control characters and what espeak-ng could read as markup; the rest of the text is spoken.
_UNSPOKEN = re.compile(r"[\x00-\x1f\x7f<>\[\]{}\\]")


class PromptError(RuntimeError):
    """A prompt could not be rendered (espeak-ng or sox missing or failing)."""


@dataclass(frozen=True)
class Prompts:
    texts: dict[str, str]
    templates: dict[str, str]

    def text(self, name: str) -> str:
        return self.texts[name]


@cache
def load_prompts(path: Path = PROMPTS_FILE) -> Prompts:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    texts = {str(k): str(v) for k, v in data.get("prompts", {}).items()}
    bad = [k for k in texts if not PROMPT_NAME_RE.fullmatch(k)]
    if bad:
        raise ValueError(f"{path}: prompt names must be lower-case words with '-': {bad}")
    return Prompts(texts=texts, templates={str(k): str(v) for k, v in data.get("templates", {}).items()})


def spoken(text: str, limit: int = MAX_SPOKEN_CHARS) -> str:
    """The part of outside text that is read out: no control characters or markup, bounded."""
    clean = " ".join(_UNSPOKEN.sub(" ", text).split())
    return clean[:limit]


def _tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise PromptError("prompts need espeak-ng and sox (apt-get install espeak-ng sox)")
    return espeak, sox


def _commands(dest: Path) -> tuple[list[str], list[str]]:
    espeak, sox = _tools()
    return ([espeak, "-v", VOICE, "-s", str(SPEED_WPM), "--stdin", "--stdout"],
            [sox, "-q", "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
             str(dest), "vol", "0.8"])


async def synthesize(text: str, dest: Path) -> Path:
    """Write ``text`` spoken in Mandarin to ``dest`` (a .wav), atomically (a call never plays half)."""
    words = spoken(text)
    if not words:
        raise PromptError("nothing to say")
    tmp = dest.with_name(f".{dest.stem}.part.wav")
    speak, convert = _commands(tmp)
    try:
        async with asyncio.timeout(SYNTH_TIMEOUT_S):
            p1 = await asyncio.create_subprocess_exec(*speak, stdin=asyncio.subprocess.PIPE,
                                                      stdout=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.DEVNULL)
            wav, _ = await p1.communicate(words.encode("utf-8"))
            if p1.returncode != 0 or not wav:
                raise PromptError(f"espeak-ng failed (rc={p1.returncode})")
            p2 = await asyncio.create_subprocess_exec(*convert, stdin=asyncio.subprocess.PIPE,
                                                      stdout=asyncio.subprocess.DEVNULL,
                                                      stderr=asyncio.subprocess.PIPE)
            _, err = await p2.communicate(wav)
            if p2.returncode != 0:
                raise PromptError(f"sox failed (rc={p2.returncode}): {err.decode(errors='replace')[:200]}")
    except TimeoutError:
        raise PromptError(f"speech synthesis took over {SYNTH_TIMEOUT_S:.0f} s") from None
    tmp.chmod(0o644)
    tmp.replace(dest)
    return dest


def wav_seconds(path: Path) -> float:
    """Length of a 16-bit mono 8 kHz WAV as written by :func:`synthesize` (header of 44 bytes)."""
    return max(0.0, (path.stat().st_size - 44) / 16000)
