"""What every benchmark shares: percentiles, the check that each row measured something, where the
results go, and the loopback servers and stack a benchmark runs on.

A quick run (``--quick``) takes the same code paths and measures the same baseline in the same run
with far fewer calls; it is a check that the benchmark still measures (``scripts/test.sh`` runs
them), so it never replaces the full run in ``bench/results/`` that the README shows.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from operations.stack import Stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ERROR_ID = "bench.nothing_measured"

# Figures that count what was measured: 0 of them means the row measured nothing.
COUNT_KEYS = frozenset({"calls", "measured", "samples", "partials", "events", "requests", "rounds",
                        "streams", "sessions", "finals"})
# Throughputs: 0 per second means nothing went through.
RATE_SUFFIXES = ("_per_s", "per_second")
# What a ``measured`` count is out of, for the message ("0 of 20 calls measured").
TOTAL_KEYS = ("calls", "requests")


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between the closest ranks (what
    ``statistics.quantiles(method="inclusive")`` gives at its cut points); NaN when there is
    nothing, so an empty row cannot pass for a fast one."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} is outside 0..1")
    s = sorted(values)
    if not s:
        return math.nan
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class NothingMeasured(SystemExit):
    """A benchmark row measured nothing: the benchmark exits 1 with the rows named on stderr."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{ERROR_ID}: " + "; ".join(problems))


def _is_rate(key: str) -> bool:
    return key.endswith(RATE_SUFFIXES)


def unmeasured(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per row that measured nothing: a count of 0, a throughput of 0, a figure that is
    None, NaN or infinite, or no figure at all. Strings, lists and booleans are not figures."""
    if not rows:
        return ["no rows at all"]
    problems: list[str] = []
    for name, row in rows.items():
        figures = 0
        for key, value in row.items():
            if isinstance(value, bool) or not (value is None or isinstance(value, int | float)):
                continue
            figures += 1
            if value is None:
                problems.append(f"row {name!r}: {key} is None")
            elif not math.isfinite(value):
                problems.append(f"row {name!r}: {key} is {value}")
            elif key == "measured" and value <= 0:
                total = next((f" of {row[k]} {k}" for k in TOTAL_KEYS if k in row), "")
                problems.append(f"row {name!r}: {value}{total} measured")
            elif (key in COUNT_KEYS or _is_rate(key)) and value <= 0:
                problems.append(f"row {name!r}: {key} is {value}")
        if not figures:
            note = next((f" ({v})" for v in row.values() if isinstance(v, str)), "")
            problems.append(f"row {name!r}: no figures{note}")
    return problems


def require_measured(rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`NothingMeasured` (exit status 1) if any row measured nothing."""
    problems = unmeasured(rows)
    if problems:
        raise NothingMeasured(problems)


def write_result(name: str, result: Mapping[str, Any], *, quick: bool,
                 out: Path | None = None) -> Path | None:
    """Write a full run to ``bench/results/<name>.json`` (or ``out``); a quick run is written only
    where ``out`` says, never over the full run."""
    path = out if out is not None else (None if quick else RESULTS_DIR / f"{name}.json")
    if path is None:
        print(f"\nquick run: {RESULTS_DIR.name}/{name}.json left as it is")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path


async def serve_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port; returns the runner (clean it up) and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@asynccontextmanager
async def bench_stack(*, site_file: Path | None = None, transcribe: bool = False,
                      log_level: str = "WARNING", **site_changes: Any) -> AsyncIterator[Stack]:
    """The whole stack on real Asterisk, in a private state directory, removed afterwards
    (``site_changes``: fields of the site to replace, such as ``callbacks``)."""
    from hotline.settings import Settings
    from operations.stack import Stack

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        env = Settings.from_env()
        settings = Settings(state_dir=Path(tmp), site_file=site_file or env.site_file, conf_dir=env.conf_dir,
                            asterisk_rootfs=env.asterisk_rootfs, log_level=log_level)
        stack = Stack.for_tests(settings, instance_name=f"bench-{uuid.uuid4().hex[:6]}", **site_changes)
        stack.transcribe_required = transcribe
        await stack.start()
        try:
            yield stack
        finally:
            await stack.stop()
            if stack.asterisk is not None:
                shutil.rmtree(stack.asterisk.paths.host, ignore_errors=True)


# What the parts log when work was lost or refused under load: Redis pool exhaustion, broadcasts not
# sent, live state not written, media taps lost or not started, events dropped. Any of these in a
# benchmark's run makes the run fail, as does anything logged at ERROR.
TROUBLE_RE = re.compile(
    r"too many connections|no connection available|not broadcast|not updated|cannot read live"
    r"|tap .* (lost|never started|not started)|dropped|undelivered|queue full|redis unavailable",
    re.IGNORECASE)
_CHILD_LEVEL_RE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")


def is_trouble(level: int, message: str) -> bool:
    return level >= logging.ERROR or (level >= logging.WARNING and bool(TROUBLE_RE.search(message)))


class Trouble(logging.Handler):
    """Collects, while a benchmark runs, what means lost work: records of this process (the API,
    the AMI listener, the taps) and the lines of the child processes' log file (FastAGI, the
    transcriber: ``Stack.child_log``)."""

    def __init__(self, child_log: Path | None = None) -> None:
        super().__init__(logging.WARNING)
        self.child_log = child_log
        self.lines: list[str] = []
        self._child_offset = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call is itself worth seeing
            message = str(record.msg)
        if is_trouble(record.levelno, message):
            self.lines.append(f"{record.levelname} {record.name}: {message[:300]}")

    def read_children(self) -> None:
        if self.child_log is None or not self.child_log.exists():
            return
        with self.child_log.open("rb") as f:
            f.seek(self._child_offset)
            chunk = f.read()
            self._child_offset = f.tell()
        for line in chunk.decode("utf-8", "replace").splitlines():
            m = _CHILD_LEVEL_RE.search(line)
            if m and is_trouble(getattr(logging, m.group(1)), line):
                self.lines.append(line[:300])

    def take(self) -> list[str]:
        """What was collected since the last call (children's log read first)."""
        self.read_children()
        out, self.lines = self.lines, []
        return out

    @contextmanager
    def watching(self) -> Iterator[Trouble]:
        root = logging.getLogger()
        root.addHandler(self)
        try:
            yield self
        finally:
            root.removeHandler(self)
