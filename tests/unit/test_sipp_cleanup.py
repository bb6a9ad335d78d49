"""The demo agents leave nothing behind: a seat unregisters when it stops, and every SIPp run's temp
dir (scenario, logs, pcaps) is removed on a normal exit and after an error.

SIPp is replaced by a small script that records each run (its arguments and scenario) and behaves
as SIPp does for the flow: a REGISTER run exits, a UAS runs until it is stopped."""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import agents.sipp as sipp
from agents.sipp import Seat, place_call, register_scenario, unregister_scenario

FAKE_SIPP = """#!/bin/sh
n=$(ls "$RUNS" | grep -c "xml$")
while [ $# -gt 0 ]; do
  case "$1" in -sf) cp "$2" "$RUNS/$n.xml";; -p) echo "$2" > "$RUNS/$n.port";; esac
  shift
done
if grep -q 'seat answers' "$RUNS/$n.xml"; then exec sleep 60; fi
if [ -e "$RUNS/../fail" ]; then echo "401 forever" >&2; exit 1; fi
exit 0
"""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = tmp_path / "sipp"
    fake.write_text(FAKE_SIPP)
    fake.chmod(0o755)
    (tmp_path / "runs").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(sipp, "sipp_binary", lambda: str(fake))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path / "runs"


def left_behind(runs: Path) -> list[str]:
    return sorted(p.name for p in (runs.parent / "tmp").iterdir())


def scenarios(runs: Path) -> list[str]:
    return [(runs / f"{i}.xml").read_text() for i in range(len(list(runs.glob("*.xml"))))]


def expires(scenario: str) -> set[str]:
    return {line.split(":", 1)[1].strip() for line in scenario.splitlines() if line.startswith("Expires:")}


def test_a_call_removes_its_temp_dir(runs: Path) -> None:
    with place_call(asterisk="127.0.0.1:5060", service="12345", caller="13800138000") as run:
        assert run.workdir.is_dir() and run.wait(10) == 0
    assert left_behind(runs) == []


def test_a_call_removes_its_temp_dir_after_an_error(runs: Path) -> None:
    with pytest.raises(ZeroDivisionError), place_call(asterisk="127.0.0.1:5060", service="110",
                                                      caller="13800138000"):
        raise ZeroDivisionError
    assert left_behind(runs) == []


def test_a_seat_unregisters_and_cleans_up_when_it_stops(runs: Path) -> None:
    with Seat("1201", "pw", "127.0.0.1:5060", dtmf="*1", dtmf_mode="rfc4733") as seat:
        seat.start()
        assert seat.uas is not None and seat.uas.proc is not None and seat.uas.proc.poll() is None
        assert left_behind(runs) == [seat.uas.workdir.name]  # the REGISTER run's dir is gone already
        assert (seat.uas.workdir / "dtmf.pcap").exists()
        uas = seat.uas.proc
    assert uas.poll() is not None
    assert left_behind(runs) == []
    register, answer, unregister = scenarios(runs)
    assert expires(register) == {"3600"} and "seat answers" in answer and expires(unregister) == {"0"}
    ports = {(runs / f"{i}.port").read_text() for i in range(3)}
    assert ports == {f"{seat.port}\n"}  # the contact Asterisk has is the one removed


def test_a_seat_unregisters_and_cleans_up_after_an_error(runs: Path) -> None:
    with pytest.raises(KeyboardInterrupt), Seat("1101", "pw", "127.0.0.1:5060") as seat:
        seat.start()
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM through `hotline seat`'s handler
    assert left_behind(runs) == []
    assert expires(scenarios(runs)[-1]) == {"0"}


def test_reregister_leaves_one_temp_dir(runs: Path) -> None:
    with Seat("1201", "pw", "127.0.0.1:5060") as seat:
        seat.start()
        seat.reregister()
        assert seat.uas is not None and left_behind(runs) == [seat.uas.workdir.name]
    assert left_behind(runs) == []


def test_a_seat_that_never_registered_sends_nothing(runs: Path) -> None:
    (runs.parent / "fail").touch()
    with pytest.raises(RuntimeError, match="failed to register.*401 forever"), \
            Seat("1201", "pw", "127.0.0.1:5060") as seat:
        seat.start()
    assert len(scenarios(runs)) == 1 and left_behind(runs) == []  # no unregister for no contact


def test_unregister_scenario_removes_the_registered_contact() -> None:
    root = ET.fromstring(unregister_scenario().encode("iso-8859-1"))
    sends = [(el.text or "").strip() for el in root.iter("send")]
    assert [s.split()[0] for s in sends] == ["REGISTER", "REGISTER"]
    assert [el.get("response") for el in root.iter("recv")] == ["401", "200"]
    assert root.findall("recv")[0].get("auth") == "true"  # digest, as for the registration
    for msg in sends:
        headers = dict(line.split(":", 1) for line in msg.splitlines()[1:] if ":" in line and line[0] != "[")
        assert headers["Expires"].strip() == "0"
        assert headers["Contact"].strip() == "<sip:[seat]@[local_ip]:[local_port]>"
    registered = [line for line in register_scenario().splitlines() if line.startswith("Contact:")]
    assert registered == [line for line in unregister_scenario().splitlines() if line.startswith("Contact:")]
