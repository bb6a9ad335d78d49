"""AGI wire format: value quoting as Asterisk parses it, header parsing, routes and arguments."""

from __future__ import annotations

import pytest

from agi.protocol import (
    AgiValueError,
    agi_args,
    format_env,
    parse_command_args,
    parse_env,
    quote_value,
    route_name,
    set_variable_command,
)
from agi.routes import safe_variables
from hotline.names import VAR_CALL_ID, VAR_FLAGS, VAR_INTAKE


@pytest.mark.parametrize("value", [
    "", "ok", "repeat,harassment", "two words", 'say "hi"', "back\\slash", 'trailing\\', '"', "\\\"",
    "红色警报 🚨", "${EVAL(bad)}", "a\tb",
])
def test_set_variable_reaches_asterisk_unchanged(value):
    if "\t" in value:
        with pytest.raises(AgiValueError):
            set_variable_command("X", value)
        return
    line = set_variable_command("HOTLINE_FLAGS", value)
    assert "\n" not in line
    assert parse_command_args(line) == ["SET", "VARIABLE", "HOTLINE_FLAGS", value]


@pytest.mark.parametrize("value", ["a\nSET VARIABLE X 1", "cr\r", "nul\x00", "del\x7f"])
def test_control_characters_are_refused_not_sent(value):
    with pytest.raises(AgiValueError) as exc:
        quote_value(value)
    assert exc.value.error_id == "agi.value_unsafe"


def test_unsafe_names_and_overlong_commands_are_refused():
    with pytest.raises(AgiValueError):
        set_variable_command("X Y", "1")
    with pytest.raises(AgiValueError):
        set_variable_command("", "1")
    with pytest.raises(AgiValueError):
        set_variable_command("X", "9" * 3000)


def test_safe_variables_drops_unsafe_values_and_marks_degraded():
    out = safe_variables({VAR_CALL_ID: "1.2", VAR_FLAGS: "x\ny", VAR_INTAKE: "ok"})
    assert out == {VAR_CALL_ID: "1.2", VAR_INTAKE: "degraded"}


def test_parse_env_is_tolerant():
    block = (b"agi_network: yes\r\nagi_network_script: /intake?x=1\n"
             b"agi_callerid: \"Caf\xe9\" <123>\nnot a header\nagi_calleridname: a: b\n"
             b"agi_arg_1: 12345\nagi_arg_2: 1700.5\nagi_arg_4: skipped\nagi_empty: \n\n")
    env = parse_env(block)
    assert env["agi_callerid"] == '"Caf\ufffd" <123>'
    assert env["agi_calleridname"] == "a: b"
    assert env["agi_empty"] == ""
    assert route_name(env) == "intake"
    assert agi_args(env) == ["12345", "1700.5"]


def test_format_env_round_trips():
    env = {"agi_network_script": "intake", "agi_callerid": "\"Bob\" <1>", "agi_arg_1": "110"}
    assert parse_env(format_env(env)) == env
