"""STYLE rule 6: the names in hotline/names.py and the files in asterisk_conf/ agree.

Renaming a context, channel variable, queue or AGI route on one side only fails here, as does a new
dialplan context that is neither named in Python nor allow-listed below, a Goto to nowhere, or a
context without its "; Reached by:" trust-boundary comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hotline import names
from hotline.contracts import Service
from hotline.names import LINKAGE_QUEUE
from hotline.secrets import Secrets
from hotline.site import load_site
from operations.render import generated_files

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "asterisk_conf"

# Contexts that exist only inside the dialplan (no Python code names them), and why.
DIALPLAN_ONLY_CONTEXTS = {
    "hotline-hangup": "hangup handler pushed at intake; Python never routes to it",
    "internal-seats": "seat-to-seat dialling, included by from-seats, from-supervisors and hotline-atxfer",
    "echo-test": "the phones' *43 echo test, included by from-seats and from-supervisors",
}
# Channel variables the dialplan never reads or sets: intake sets them for the record only.
NOT_IN_DIALPLAN_VARS = {
    names.VAR_REPEAT_24H: "set by the intake AGI for the seat's screen and the call record",
}
NOT_CONTEXTS = {"general", "globals"}  # special sections of extensions.conf

CTX = {k: v for k, v in vars(names).items() if k.startswith("CTX_")}
VARS = {k: v for k, v in vars(names).items() if k.startswith("VAR_")}


@dataclass
class Context:
    name: str
    comment: list[str]  # the comment lines right above the [name] line
    lines: list[str] = field(default_factory=list)  # body, comments stripped

    @property
    def extens(self) -> set[str]:
        return {m.group(1) for line in self.lines if (m := re.match(r"exten\s*=>\s*([^,]+),", line))}

    @property
    def labels(self) -> set[str]:
        return {m.group(1) for line in self.lines for m in re.finditer(r"=>\s*[^,]*?,?n\(([^)]+)\)", line)}


def strip_comment(line: str) -> str:
    # ';' starts a comment unless escaped; the dialplan here has none escaped
    return line.split(";", 1)[0].rstrip()


def parse_sections(text: str) -> dict[str, Context]:
    out: dict[str, Context] = {}
    lines = text.splitlines()
    current: Context | None = None
    for i, raw in enumerate(lines):
        m = re.match(r"^\[([^\]]+)\]", raw)
        if m:
            comment: list[str] = []
            j = i - 1
            while j >= 0 and lines[j].lstrip().startswith(";"):
                comment.insert(0, lines[j].strip())
                j -= 1
            assert m.group(1) not in out, f"section [{m.group(1)}] defined twice"
            current = out[m.group(1)] = Context(m.group(1), comment)
            continue
        line = strip_comment(raw).strip()
        if current is not None and line:
            current.lines.append(line)
    return out


@pytest.fixture(scope="module")
def extensions_text() -> str:
    return (CONF / "extensions.conf").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dialplan(extensions_text: str) -> dict[str, Context]:
    return {k: v for k, v in parse_sections(extensions_text).items() if k not in NOT_CONTEXTS}


def section_names(conf: str) -> set[str]:
    return set(parse_sections((CONF / conf).read_text(encoding="utf-8")))


# --- names.py -> asterisk_conf/ -------------------------------------------------------------------

def test_names_module_has_the_expected_kinds() -> None:
    assert CTX and VARS  # the introspection above still finds them
    assert set(names.CHANNEL_VARS) == set(VARS.values())


@pytest.mark.parametrize("const", sorted(CTX))
def test_every_named_context_is_a_dialplan_section(const: str, dialplan: dict[str, Context]) -> None:
    assert CTX[const] in dialplan, f"{const}={CTX[const]!r} has no [{CTX[const]}] in extensions.conf"


@pytest.mark.parametrize("const", sorted(VARS))
def test_every_channel_variable_is_used_in_the_dialplan(const: str, extensions_text: str) -> None:
    var = VARS[const]
    body = "\n".join(strip_comment(line) for line in extensions_text.splitlines())
    used = re.search(rf"\$\{{{var}\}}|Set\({var}=", body) is not None
    if var in NOT_IN_DIALPLAN_VARS:
        assert not used, f"{var} is used in the dialplan now; drop it from NOT_IN_DIALPLAN_VARS"
    else:
        assert used, f"{const}={var!r} is neither read (${{{var}}}) nor set in extensions.conf"


@pytest.mark.parametrize("svc", list(Service))
def test_intake_sets_service_and_queue_per_platform(svc: Service, dialplan: dict[str, Context]) -> None:
    intake = dialplan[names.CTX_INTAKE]
    assert svc.value in intake.extens
    steps = [line for line in intake.lines if re.match(rf"exten\s*=>\s*{svc.value},", line)]
    i = intake.lines.index(steps[0])
    block = [steps[0]] + [line for line in intake.lines[i + 1:i + 4] if line.startswith("same")]
    text = "\n".join(block)
    assert f"Set({names.VAR_SERVICE}={svc.value})" in text
    assert f"Set({names.VAR_QUEUE}={names.QUEUE_BY_SERVICE[svc]})" in text


def test_queues_are_sections_of_queues_conf() -> None:
    queues = {q for q in section_names("queues.conf") if q != "general"}
    text = (CONF / "queues.conf").read_text(encoding="utf-8")
    templates = set(re.findall(r"^\[([^\]]+)\]\(!\)", text, re.M))
    known = set(names.QUEUE_BY_SERVICE.values()) | set(LINKAGE_QUEUE.values())
    assert set(names.QUEUE_BY_SERVICE.values()) <= queues
    assert queues - templates == known, "a queue in queues.conf that Python does not name, or the reverse"


def test_service_by_queue_is_the_inverse() -> None:
    assert {s: q for q, s in names.SERVICE_BY_QUEUE.items()} == names.QUEUE_BY_SERVICE
    assert set(names.QUEUE_BY_SERVICE) == set(Service)


def test_agi_routes_in_the_dialplan_are_named(extensions_text: str, dialplan: dict[str, Context]) -> None:
    routes = re.findall(r"AGI\(agi://([^/,)]+)/([^,)]+)", extensions_text)
    assert routes, "no FastAGI call found in extensions.conf"
    assert {r for _, r in routes} == {names.AGI_ROUTE_INTAKE, names.AGI_ROUTE_RATING, names.AGI_ROUTE_SURVEY,
                                      names.AGI_ROUTE_QUEUE_CALLBACK}
    # each AGI runs in its own context and its host comes from the generated globals
    for route, ctx in ((names.AGI_ROUTE_INTAKE, names.CTX_INTAKE), (names.AGI_ROUTE_RATING, names.CTX_RATING),
                       (names.AGI_ROUTE_SURVEY, names.CTX_CALLBACK),
                       (names.AGI_ROUTE_QUEUE_CALLBACK, names.CTX_QUEUE_EXIT)):
        assert any(f"/{route}," in line for line in dialplan[ctx].lines), route
    hosts = {h for h, _ in routes}
    assert hosts == {"${HOTLINE_AGI}"}
    site = load_site(REPO / "site.toml")
    secrets = Secrets("x", {s: "p" for s in site.all_seats}, {}, "y")
    globals_conf = generated_files(site, secrets, "127.0.0.1", 4573)["globals.conf"]
    assert re.search(r"^HOTLINE_AGI=127\.0\.0\.1:4573$", globals_conf, re.M)


def test_pjsip_endpoints_enter_the_named_contexts() -> None:
    pjsip = (CONF / "pjsip.conf").read_text(encoding="utf-8")
    contexts = {}
    for name, body in re.findall(r"^\[([^\]]+)\]\([^)]*\)\n((?:[^\[\n].*\n|\n)*)", pjsip, re.M):
        if m := re.search(r"^context\s*=\s*(\S+)", body, re.M):
            contexts[name] = m.group(1)
    assert contexts == {
        "trunk-endpoint": names.CTX_FROM_TRUNK,
        "seat-endpoint": names.CTX_SEATS,
        "supervisor-endpoint": names.CTX_SUPERVISORS,
    }


# --- asterisk_conf/ -> names.py -------------------------------------------------------------------

def test_every_dialplan_context_is_named_or_allow_listed(dialplan: dict[str, Context]) -> None:
    unnamed = set(dialplan) - set(CTX.values()) - set(DIALPLAN_ONLY_CONTEXTS)
    assert unnamed == set(), f"name these in hotline/names.py or allow-list them here: {sorted(unnamed)}"
    stale = set(DIALPLAN_ONLY_CONTEXTS) - set(dialplan)
    assert stale == set(), f"allow-listed contexts no longer in extensions.conf: {sorted(stale)}"


def test_every_context_has_a_reached_by_comment(dialplan: dict[str, Context]) -> None:
    missing = [c.name for c in dialplan.values()
               if not any(line.startswith("; Reached by:") for line in c.comment)]
    assert missing == [], f"contexts without a '; Reached by:' comment right above them: {missing}"


# --- jumps land somewhere -------------------------------------------------------------------------

def jump_targets(line: str) -> list[list[str]]:
    """Destinations of Goto/GotoIf/Gosub and hangup handlers on one dialplan line, as split parts."""
    out: list[list[str]] = []
    for app, args in re.findall(r"\b(Goto|GotoIf|Gosub)\((.*)\)\s*$", line):
        dests = args.rsplit("?", 1)[1].split(":") if app == "GotoIf" else [args]
        out += [[p.strip() for p in d.split(",")] for d in dests if d.strip()]
    for args in re.findall(r"hangup_handler_push\)=([^)\s]+)", line):
        out.append(args.split(","))
    return out


def check_jumps(ctx: Context, contexts: dict[str, Context], lines: list[str]) -> list[str]:
    problems = []
    exten = ""
    for line in lines:
        if m := re.match(r"exten\s*=>\s*([^,]+),", line):
            exten = m.group(1)
        for parts in jump_targets(line):
            if len(parts) == 3:
                target_ctx, target_exten = parts[0], parts[1]
                if target_ctx not in contexts:
                    problems.append(f"[{ctx.name}] {exten}: jump to unknown context {target_ctx!r}")
                elif target_exten not in contexts[target_ctx].extens:
                    problems.append(f"[{ctx.name}] {exten}: no exten {target_exten!r} in [{target_ctx}]")
            elif len(parts) == 2:
                if parts[0] not in ctx.extens:
                    problems.append(f"[{ctx.name}] {exten}: no exten {parts[0]!r} in this context")
            elif parts[0] not in ctx.labels:
                problems.append(f"[{ctx.name}] {exten}: no priority label {parts[0]!r}")
    return problems


def test_every_jump_in_the_dialplan_lands(dialplan: dict[str, Context]) -> None:
    problems = [p for ctx in dialplan.values() for p in check_jumps(ctx, dialplan, ctx.lines)]
    assert problems == []


def test_jump_parser_sees_the_jumps(dialplan: dict[str, Context]) -> None:
    # guards the test above against a parser that silently finds nothing
    found = [tuple(p) for ctx in dialplan.values() for line in ctx.lines for p in jump_targets(line)]
    assert ("agi-fail", "s", "1") in found
    assert ("hotline-intake", "queue", "1") in found
    assert ("hotline-hangup", "s", "1") in found
    assert ("wait",) in found and ("queue", "1") in found
    broken = Context("x", [], ["exten => s,1,Goto(nowhere,s,1)", "same => n,Goto(wait)",
                               "same => n,Goto(y,1)"])
    assert len(check_jumps(broken, dialplan, broken.lines)) == 3


def test_every_include_names_a_context(dialplan: dict[str, Context]) -> None:
    includes = [(c.name, m.group(1)) for c in dialplan.values() for line in c.lines
                if (m := re.match(r"include\s*=>\s*(\S+)", line))]
    assert includes, "no include => found"
    assert [(c, t) for c, t in includes if t not in dialplan] == []


def test_generated_numbers_land_in_intake(dialplan: dict[str, Context]) -> None:
    site = load_site(REPO / "site.toml")
    secrets = Secrets("x", {s: "p" for s in site.all_seats}, {}, "y")
    numbers = generated_files(site, secrets, "127.0.0.1", 4573)["numbers.conf"].splitlines()
    trunk = dialplan[names.CTX_FROM_TRUNK]
    assert check_jumps(trunk, dialplan, numbers) == []
    assert len(numbers) == sum(len(site.numbers[s]) for s in Service)


def test_every_context_is_reachable(dialplan: dict[str, Context]) -> None:
    reached = {names.CTX_FROM_TRUNK, names.CTX_SEATS, names.CTX_SUPERVISORS}  # pjsip endpoints' context=
    for ctx in dialplan.values():
        for line in ctx.lines:
            reached |= {p[0] for p in jump_targets(line) if len(p) == 3}
            if m := re.match(r"include\s*=>\s*(\S+)", line):
                reached.add(m.group(1))
            reached |= set(re.findall(r"b\(([\w-]+)\^", line))  # Queue/Dial option b(ctx^exten^prio)
            reached |= set(re.findall(r"ChannelRedirect\([^,]+,([\w-]+),", line))
    # features.conf applicationmap entries (generated from the site) Gosub into contexts too.
    site = load_site(REPO / "site.toml")
    appmap = generated_files(site, Secrets("x", {s: "p" for s in site.all_seats}, {}, "y"),
                             "127.0.0.1", 4573)["applicationmap.conf"]
    reached |= set(re.findall(r"Gosub\(([\w-]+),", appmap))
    codes = generated_files(site, Secrets("x", {s: "p" for s in site.all_seats}, {}, "y"),
                            "127.0.0.1", 4573)["supervisor_codes.conf"]
    reached |= set(re.findall(r"Gosub\(([\w-]+),", codes))
    # The API's flows enter these by AMI Redirect / Originate; the linkage trunk's endpoint, by context=.
    reached |= {names.CTX_TRANSFER, names.CTX_CONF, names.CTX_CONF_INVITE, names.CTX_FROM_LINKAGE,
                names.CTX_ATXFER,  # AMI Atxfer, and TRANSFER_CONTEXT for the seat's own *2
                names.CTX_TAP,  # AMI Originate by the media-tap controller
                names.CTX_CALLBACK, names.CTX_CALLBACK_SEAT,  # AMI Originate by the callback scheduler
                names.CTX_FROM_CALLBACK_TRUNK,  # the outbound trunk's endpoint, by context=
                names.CTX_QUEUE_EXIT}  # queues.conf context= of the 12345 queue (its callback key)
    reached |= set(re.findall(r"hangup_handler_push\)=([\w-]+),", "\n".join(
        line for ctx in dialplan.values() for line in ctx.lines)))
    assert set(dialplan) - reached == set(), "contexts nothing jumps to, includes, or enters"
