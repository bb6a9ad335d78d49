"""Live transcription: our pipeline beside raw Vosk, streams in real time, partial latency.

All on the same synthesized speech (espeak-ng, Korean: the only model these machines can install)
and in the same run:

1. **Real-time factor, raw vs pipeline.** Raw: Vosk decoding the audio directly in this process,
   one thread, in the half-second bites and without the partial results that a stream behind real
   time uses (``transcription/stream.py``, catch-up). Pipeline: the transcriber process (``python
   -m transcription``) fed the same audio over a loopback AudioSocket connection framed exactly as
   Asterisk frames it (320-byte messages), as fast as the socket takes it (so it is behind real
   time throughout); timed from the first byte sent to the last final segment received on Redis
   pub/sub. This covers framing, the socket, the backlog, the pool and publishing. RTF =
   processing time / audio length; overhead = pipeline / raw - 1. Rounds are interleaved.
2. **Streams in real time.** N streams at once, each paced at 20 ms a frame (as a call sends),
   into the same process: the largest N whose audio is all decoded (nothing dropped) and whose
   last final arrives within 2 s of the end of its audio.
3. **Partial latency, speech to WebSocket**, on the real stack: a SIPp caller speaks on a real
   call through Asterisk (tap = ChanSpy + AudioSocket), the supervisors' WebSocket receives the
   partials; latency = arrival - the partial's ``end`` (when the last audio it covers was spoken,
   by the transcriber's sample clock, which starts when the tap's first audio arrives).

    .venv/bin/python -m bench.bench_transcribe [--seconds 30] [--max-streams 8] [--calls 4]

Prints a markdown table and writes ``bench/results/transcribe.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from agents.speech import silence, synthesize, write_speech_pcap
from hotline import redis_keys
from hotline.secrets import ensure_secrets
from hotline.settings import Settings
from operations.redis_server import RedisServer
from transcription.audiosocket import KIND_AUDIO, KIND_HANGUP, encode, id_message
from transcription.recognizer import resolve_model_path
from transcription.stream import CATCH_UP_CHUNK_S

RESULTS = Path(__file__).resolve().parent / "results" / "transcribe.json"
SENTENCES = ["안녕하세요 도로에 물이 새고 있어요. 빨리 와 주세요.", "감사합니다 바로 확인하겠습니다",
             "경찰입니다 무슨 일이 있습니까", "서울시 강남구 도로에 큰 구멍이 있습니다"]
FRAME = 320


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def speech_audio(seconds: float) -> bytes:
    parts: list[bytes] = []
    n = 0
    while sum(map(len, parts)) < seconds * 16000:
        parts.append(synthesize(SENTENCES[n % len(SENTENCES)]) + silence(800))
        n += 1
    return b"".join(parts)[: int(seconds * 16000) // 2 * 2]


def raw_vosk(model: Any, pcm: bytes) -> dict[str, float]:
    import vosk

    rec = vosk.KaldiRecognizer(model, 8000.0)
    rec.SetWords(True)
    bite = int(CATCH_UP_CHUNK_S * 16000)
    t0 = time.perf_counter()
    for i in range(0, len(pcm), bite):
        if rec.AcceptWaveform(pcm[i:i + bite]):
            rec.Result()
    rec.FinalResult()
    took = time.perf_counter() - t0
    return {"seconds": took, "rtf": took / (len(pcm) / 16000)}


class TranscriberProcess:
    """The real transcriber process, with a real Redis, on free ports."""

    def __init__(self, state: Path, redis_url: str, backlog_ms: int, max_streams: int = 0) -> None:
        from operations.ports import free_port

        self.settings = Settings(state_dir=state, redis_url=redis_url, audiosocket_port=free_port(),
                                 api_port=free_port(), transcribe_backlog_ms=backlog_ms,
                                 transcribe_max_streams=max_streams)
        ensure_secrets(self.settings.secrets_file, ())
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> TranscriberProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(self.settings.to_env(), HOTLINE_LOG_LEVEL="WARNING")
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "transcription", env=env,
                                                         stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line.startswith(b"READY"):
            raise RuntimeError("transcriber did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        await self.proc.wait()


async def stream(redis: Redis, port: int, pcm: bytes, *, paced: bool) -> dict[str, Any]:
    """One tapped party as Asterisk sends it; returns when its last final is on Redis."""
    tap = str(uuid.uuid4())
    call = f"bench-{tap[:8]}"
    await redis.hset(redis_keys.media_tap(tap), mapping={"call": call, "speaker": "caller", "seat": ""})
    sub = redis.pubsub()
    await sub.subscribe(redis_keys.transcript_channel(call))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(id_message(tap))
    t0 = time.perf_counter()
    for n, i in enumerate(range(0, len(pcm), FRAME)):
        writer.write(encode(KIND_AUDIO, pcm[i:i + FRAME]))
        if paced:
            await writer.drain()
            await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.02 - time.perf_counter()))
        elif n % 50 == 0:
            await writer.drain()
    writer.write(encode(KIND_HANGUP))
    await writer.drain()
    sent = time.perf_counter()
    # The transcriber closes the stream once it has decoded everything and published the last final.
    while await reader.read(65536):
        pass
    done = time.perf_counter()
    writer.close()
    finals = gaps = 0
    quiet_until = time.perf_counter() + 0.5
    while time.perf_counter() < quiet_until:  # what is still on its way (None: the subscribe answer)
        msg = await sub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg is not None:
            kind = json.loads(msg["data"])["kind"]
            finals += kind == "final"
            gaps += kind == "gap"
            quiet_until = time.perf_counter() + 0.5
    await sub.aclose()
    if not finals:
        raise RuntimeError(f"stream {tap}: no final segment came out")
    return {"elapsed": done - t0, "after_audio": done - sent, "finals": finals, "gaps": gaps}


async def pipeline_rtf(redis: Redis, port: int, pcm: bytes) -> dict[str, float]:
    r = await stream(redis, port, pcm, paced=False)
    return {"seconds": r["elapsed"], "rtf": r["elapsed"] / (len(pcm) / 16000), "finals": r["finals"]}


async def capacity(redis_url: str, state: Path, pcm: bytes, max_streams: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with TranscriberProcess(state / "cap", redis_url, 2000, max_streams=256) as tp:
        redis = Redis.from_url(redis_url)
        n = 1
        while n <= max_streams:
            runs = await asyncio.gather(*(stream(redis, tp.settings.audiosocket_port, pcm, paced=True)
                                          for _ in range(n)))
            row = {"streams": n, "gaps": sum(r["gaps"] for r in runs),
                   "final_after_audio_max_s": round(max(r["after_audio"] for r in runs), 2)}
            row["real_time"] = row["gaps"] == 0 and row["final_after_audio_max_s"] <= 2.0
            out.append(row)
            print(f"  {n} streams: gaps {row['gaps']}, last final {row['final_after_audio_max_s']} s "
                  f"after the audio", flush=True)
            if not row["real_time"]:
                break
            n = n + 1 if n < 4 else n + 2
        await redis.aclose()
    return out


async def partial_latency(calls: int) -> dict[str, Any]:
    import aiohttp

    from agents.sipp import Seat, place_call
    from hotline.contracts import Service

    env = Settings.from_env()
    state = Path(tempfile.mkdtemp(prefix="bench-transcribe-"))
    from operations.stack import Stack

    stack = Stack.for_tests(Settings(state_dir=state, site_file=env.site_file, conf_dir=env.conf_dir,
                                     asterisk_rootfs=env.asterisk_rootfs),
                            instance_name=f"bench-{uuid.uuid4().hex[:6]}")
    stack.transcribe_required = True
    await stack.start()
    lat: list[float] = []
    try:
        assert stack.secrets is not None
        seat = stack.site.operators[Service.HOTLINE_12345][0]
        phone = Seat(seat, stack.secrets.sip_passwords[seat], stack.sip_address)
        await asyncio.to_thread(phone.start)
        pcap = state / "caller.pcap"
        write_speech_pcap(pcap, silence(800) + synthesize(SENTENCES[0]) + silence(1200))
        url = stack.api_url.replace("http://", "ws://") + "/api/live"
        headers = {"Authorization": f"Bearer {stack.secrets.token_for('supervisor')}"}
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            for n in range(calls):
                run = place_call(asterisk=stack.sip_address, service="12345", caller=f"1390000{n:04d}",
                                 talk_ms=7000, local_ip=stack.site.trunk_hosts[0], audio_pcap=str(pcap))
                deadline = time.monotonic() + 12
                while time.monotonic() < deadline:
                    try:
                        msg = await ws.receive(timeout=1.0)
                    except TimeoutError:
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    seg = msg.json()
                    kind = (seg.get("type"), seg.get("kind"), seg.get("speaker"))
                    if kind == ("segment", "partial", "caller"):
                        lat.append((time.time() - seg["end"]) * 1000)
                await asyncio.to_thread(run.wait, 20)
        phone.stop()
    finally:
        await stack.stop()
        if stack.asterisk is not None:
            shutil.rmtree(stack.asterisk.paths.host, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    return {"partials": len(lat), "p50_ms": round(pct(lat, 0.5), 1), "p95_ms": round(pct(lat, 0.95), 1)}


async def main_async(seconds: float, max_streams: int, calls: int, rounds: int) -> dict[str, Any]:
    pcm = speech_audio(seconds)
    print(f"audio: {len(pcm) / 16000:.1f} s of synthesized speech", flush=True)
    import vosk

    vosk.SetLogLevel(-1)
    model = vosk.Model(str(resolve_model_path(None)))
    state = Path(tempfile.mkdtemp(prefix="bench-transcribe-"))
    server = RedisServer()
    server.start()
    try:
        redis = Redis.from_url(server.url)
        raws, pipes = [], []
        async with TranscriberProcess(state / "rtf", server.url, 3_600_000) as tp:
            await pipeline_rtf(redis, tp.settings.audiosocket_port, pcm[:16000 * 3])  # warm up
            for _ in range(rounds):  # interleaved, so a noisy moment hits both alike
                raws.append((await asyncio.to_thread(raw_vosk, model, pcm))["rtf"])
                pipes.append((await pipeline_rtf(redis, tp.settings.audiosocket_port, pcm))["rtf"])
                print(f"  raw Vosk RTF {raws[-1]:.3f}, pipeline RTF {pipes[-1]:.3f}", flush=True)
        raw, pipe = {"rtf": statistics.median(raws)}, {"rtf": statistics.median(pipes)}
        await redis.aclose()
        cap = await capacity(server.url, state, pcm[: 16000 * 20], max_streams)
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    latency = await partial_latency(calls)
    sustained = max((r["streams"] for r in cap if r["real_time"]), default=0)
    return {"audio_s": round(len(pcm) / 16000, 1), "cores": os.cpu_count(),
            "raw_rtf": round(raw["rtf"], 3), "pipeline_rtf": round(pipe["rtf"], 3),
            "raw_rtf_rounds": [round(r, 3) for r in raws],
            "pipeline_rtf_rounds": [round(p, 3) for p in pipes],
            "overhead_pct": round((pipe["rtf"] / raw["rtf"] - 1) * 100, 1),
            "streams_real_time": sustained, "capacity": cap, "partial_latency": latency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-streams", type=int, default=10)
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="raw/pipeline rounds, interleaved (median)")
    args = ap.parse_args()
    res = asyncio.run(main_async(args.seconds, args.max_streams, args.calls, args.rounds))
    RESULTS.write_text(json.dumps(res, indent=2))
    lat = res["partial_latency"]
    lines = [
        "| measure | result |", "|---|---|",
        f"| real-time factor, raw Vosk (baseline), {res['audio_s']} s of speech | {res['raw_rtf']} |",
        f"| real-time factor, our pipeline (AudioSocket, backlog, pool, publishing) | "
        f"{res['pipeline_rtf']} ({res['overhead_pct']:+} %) |",
        f"| streams decoded in real time at once ({res['cores']} cores), nothing dropped | "
        f"{res['streams_real_time']} |",
        f"| partial result, speech to WebSocket, real calls ({lat['partials']} partials) | "
        f"p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
