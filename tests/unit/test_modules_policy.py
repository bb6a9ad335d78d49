"""Least privilege in Asterisk: `hotline dialplan check` refuses a shell module, an undocumented
module and an application module the dialplan does not use (operations/modules_policy.py)."""

from __future__ import annotations

from pathlib import Path

from operations import modules_policy

REPO = Path(__file__).resolve().parents[2]
DIALPLAN = """
exten => s,1,Set(X=${CUT(Y,-,1)})
 same => n,Queue(q)
 same => n,ExecIf($[1]?Log(WARNING,x))
"""


def _conf(*mods: str) -> str:
    return "[modules]\nautoload = no\n" + "".join(f"load = {m}   ; why\n" for m in mods)


def test_a_shell_module_is_refused_whatever_the_dialplan_says() -> None:
    for mod in ("func_shell.so", "app_system.so"):
        problems = modules_policy.check(_conf("app_queue.so", mod), DIALPLAN + "same => n,System(id)\n")
        assert any(mod in p and "never" in p for p in problems), problems


def test_an_unused_application_module_is_refused() -> None:
    problems = modules_policy.check(_conf("app_queue.so", "func_cut.so", "app_exec.so", "app_verbose.so",
                                          "app_echo.so"), DIALPLAN)
    assert problems == ["modules.conf: app_echo.so is loaded but the dialplan uses none of Echo"]


def test_an_undocumented_module_is_refused() -> None:
    problems = modules_policy.check(_conf("app_queue.so", "func_cut.so", "app_exec.so", "app_verbose.so",
                                          "func_db.so"), DIALPLAN)
    assert len(problems) == 1 and "func_db.so" in problems[0] and "documents" in problems[0]


def test_a_used_function_without_its_module_is_refused() -> None:
    problems = modules_policy.check(_conf("app_queue.so", "app_exec.so", "app_verbose.so"), DIALPLAN)
    assert problems == ["dialplan: function CUT is used but its module is not loaded"]


def test_comments_do_not_count_as_loads() -> None:
    text = "; load = func_shell.so\nload = app_dial.so ; x\n"
    assert modules_policy.loaded_modules(text) == ["app_dial.so"]


def test_the_repositorys_modules_conf_loads_no_shell() -> None:
    loaded = modules_policy.loaded_modules((REPO / "asterisk_conf" / "modules.conf").read_text())
    assert loaded and not set(loaded) & set(modules_policy.FORBIDDEN)
    assert set(loaded) <= set(modules_policy.ALLOWED)
