"""Render the fixed prompts (``hotline/prompts.toml``) into an Asterisk sounds directory.

Each prompt becomes ``<dir>/<name>.wav``. A manifest beside them (``.rendered.json``: name -> the
text and the file's size when we wrote it) tells our files from a site's recordings: a file we
rendered is rendered again when its text changes; any other file of that name is the site's and is
left alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from hotline.prompts import Prompts, load_prompts, synthesize

log = logging.getLogger(__name__)

MANIFEST = ".rendered.json"


async def render_prompts(dest: Path, prompts: Prompts | None = None) -> dict[str, str]:
    """Render what is missing or stale; return name -> "rendered" | "kept" | "recording"."""
    prompts = prompts or load_prompts()
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(dest.chmod, 0o755)
    manifest_path = dest / MANIFEST
    try:
        manifest: dict[str, dict[str, object]] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        manifest = {}
    done: dict[str, str] = {}
    todo: list[tuple[str, str]] = []
    for name, text in prompts.texts.items():
        wav = dest / f"{name}.wav"
        ours = manifest.get(name)
        if wav.exists() and (ours is None or ours.get("size") != wav.stat().st_size):
            done[name] = "recording"  # not the file we wrote: the site's own
        elif wav.exists() and ours is not None and ours.get("text") == text:
            done[name] = "kept"
        else:
            todo.append((name, text))
    results = await asyncio.gather(*(synthesize(text, dest / f"{name}.wav") for name, text in todo))
    for (name, text), path in zip(todo, results, strict=True):
        manifest[name] = {"text": text, "size": path.stat().st_size}
        done[name] = "rendered"
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    if todo:
        log.info("prompts: rendered %d into %s", len(todo), dest)
    return done
