"""Site file, rendered Asterisk configuration, secrets, settings and phone numbers (no Asterisk)."""

from __future__ import annotations

import copy
import dataclasses
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from hotline.contracts import Service
from hotline.names import CTX_INTAKE, LINKAGE_QUEUE, QUEUE_BY_SERVICE
from hotline.phone import MAX_NUMBER_LEN, clean_number, mask_number
from hotline.secrets import API_ROLES, Secrets, ensure_secrets, load_secrets
from hotline.settings import Settings, SettingsError, parse_bool, parse_int
from hotline.site import Site, SiteError, load_site, parse_site
from operations.render import AMI_ADMIN_USER, AMI_USER, InstancePaths, generated_files, render

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "asterisk_conf"

VALID: dict[str, Any] = {
    "site": {"name": "test site"},
    "sip": {"bind": "127.0.0.1", "port": 5060, "rtp_start": 20000, "rtp_end": 20999},
    "ami": {"bind": "127.0.0.1", "port": 5038},
    "agi": {"host": "127.0.0.1", "port": 4573},
    "trunk": {"hosts": ["127.0.0.2", "10.1.0.0/24"]},
    "numbers": {"12345": ["12345"], "110": ["110", "96110"]},
    "seats": {"12345": ["1201", "1202"], "110": ["1101"], "linkage_12345": ["1291"],
              "linkage_110": ["1191"], "supervisors": ["1901"]},
    "queues": {"ring_seat_s": 15, "retry_s": 2},
}


def site_data(**changes: Any) -> dict[str, Any]:
    """VALID with dotted-path changes; a value of ``...`` deletes the key."""
    data = copy.deepcopy(VALID)
    for path, value in changes.items():
        *parents, last = path.split("__")
        cur = data
        for p in parents:
            cur = cur[p]
        if value is ...:
            del cur[last]
        else:
            cur[last] = value
    return data


def fake_secrets(site: Site) -> Secrets:
    return Secrets(ami_secret="ami-secret-xyz", ami_admin_secret="ami-admin-secret-abc",
                   sip_passwords={s: f"pw-{s}-{i}" for i, s in enumerate(site.all_seats)},
                   api_tokens={f"tok-{r}": {"name": r, "role": r} for r in API_ROLES})


# --- site.toml ------------------------------------------------------------------------------------

def test_repo_site_toml_loads() -> None:
    site = load_site(REPO / "site.toml")
    assert site.numbers[Service.HOTLINE_12345] == ("12345",)
    assert site.numbers[Service.POLICE_110] == ("110",)
    assert site.operators[Service.HOTLINE_12345] and site.operators[Service.POLICE_110]
    assert site.sip_bind == "127.0.0.1" and site.ami_bind == "127.0.0.1"
    assert site.rtp_end > site.rtp_start
    assert len(set(site.all_seats)) == len(site.all_seats)


def test_parse_site_valid() -> None:
    site = parse_site(site_data())
    assert site.trunk_hosts == ("127.0.0.2", "10.1.0.0/24")
    assert site.all_seats == ("1201", "1202", "1291", "1101", "1191", "1901")
    assert site.service_of_seat("1291") is Service.HOTLINE_12345
    assert site.service_of_seat("1101") is Service.POLICE_110
    assert site.service_of_seat("1901") is None


def test_defaults_for_optional_sections() -> None:
    site = parse_site(site_data(sip=..., ami=..., agi=..., queues=..., site=...))
    assert (site.sip_bind, site.sip_port) == ("127.0.0.1", 5060)
    assert (site.ami_bind, site.ami_port) == ("127.0.0.1", 5038)
    assert (site.rtp_start, site.rtp_end, site.ring_seat_s, site.retry_s) == (20000, 20999, 15, 2)


BAD_SITES: dict[str, tuple[dict[str, Any], str]] = {
    "missing numbers": (site_data(numbers=...), "numbers.12345"),
    "missing 110 numbers": (site_data(numbers__110=...), "numbers.110"),
    "empty number list": (site_data(numbers__12345=[]), "numbers.12345"),
    "bad dialled number": (site_data(numbers__110=["1 10"]), "numbers.110"),
    "empty operator list": (site_data(seats__110=[]), "seats.110"),
    "missing operators": (site_data(seats__12345=...), "seats.12345"),
    "duplicate seat across platforms": (site_data(seats__110=["1201"]), "1201"),
    "duplicate seat operator/supervisor": (site_data(seats__supervisors=["1202"]), "1202"),
    "bad seat id": (site_data(seats__12345=["12a1"]), "seats.12345"),
    "one-digit seat id": (site_data(seats__linkage_110=["1"]), "seats.linkage_110"),
    "numeric seat id": (site_data(seats__12345=[1201]), "seats.12345"),
    "bad trunk host": (site_data(trunk__hosts=["carrier.example.com"]), "carrier.example.com"),
    "missing trunk hosts": (site_data(trunk__hosts=...), "trunk.hosts"),
    "trunk hosts not a list": (site_data(trunk__hosts="127.0.0.2"), "trunk.hosts"),
    "port as string": (site_data(sip__port="5060"), "sip.port"),
    "port as bool": (site_data(ami__port=True), "ami.port"),
    "bind as int": (site_data(sip__bind=0), "sip.bind"),
    "seats not a list": (site_data(seats__12345="1201"), "seats.12345"),
    "ring time as float": (site_data(queues__ring_seat_s=1.5), "queues.ring_seat_s"),
    "rtp_end == rtp_start": (site_data(sip__rtp_end=20000), "sip.rtp_end"),
    "rtp_end < rtp_start": (site_data(sip__rtp_end=10000), "sip.rtp_end"),
}


@pytest.mark.parametrize(("data", "key"), BAD_SITES.values(), ids=BAD_SITES.keys())
def test_bad_site_raises_site_error_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SiteError) as err:
        parse_site(data)
    assert key in str(err.value)


def test_bad_trunk_host_message_says_trunk() -> None:
    with pytest.raises(SiteError, match="trunk host"):
        parse_site(site_data(trunk__hosts=["127.0.0.2", "300.1.1.1"]))


SHARED_NUMBER_BUG = (
    "parse_site does not reject a dialled number listed for both platforms; numbers.conf then holds two "
    "`exten => N` lines in from-trunk and Asterisk keeps only one, so every call to N silently reaches "
    "one platform"
)


def test_same_dialled_number_on_both_platforms_is_rejected() -> None:
    with pytest.raises(SiteError, match="12345"):
        parse_site(site_data(numbers__110=["110", "12345"]))


TRAILING_NEWLINE_BUG = (
    "_SEAT_RE/_NUMBER_RE use re.match with `$`, which also matches before a final newline: seat id "
    "'1901\\n' or number '110\\n' passes validation and breaks the generated pjsip/dialplan config"
)


@pytest.mark.parametrize(("data", "key"), [
    (site_data(seats__supervisors=["1901\n"]), "seats.supervisors"),
    (site_data(numbers__110=["110\n"]), "numbers.110"),
], ids=["seat id", "dialled number"])
def test_id_with_trailing_newline_is_rejected(data: dict[str, Any], key: str) -> None:
    with pytest.raises(SiteError, match=re.escape(key)):
        parse_site(data)


def test_invalid_toml_raises_site_error_with_the_path(tmp_path: Path) -> None:
    p = tmp_path / "site.toml"
    p.write_text('[sip]\nport = = 5060\n', encoding="utf-8")
    with pytest.raises(SiteError, match=re.escape(str(p))):
        load_site(p)


def test_missing_site_file_raises_site_error(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="not found"):
        load_site(tmp_path / "nope.toml")


def test_with_ports_keeps_the_rtp_range_width() -> None:
    site = parse_site(site_data()).with_ports(sip_port=15060, ami_port=15038, agi_port=14573, rtp_start=30000)
    assert (site.sip_port, site.ami_port, site.agi_port) == (15060, 15038, 14573)
    assert (site.rtp_start, site.rtp_end) == (30000, 30999)


# --- generated/*.conf -----------------------------------------------------------------------------

Section = tuple[str, tuple[str, ...], dict[str, list[str]]]


def sections(text: str) -> list[Section]:
    """Parse Asterisk config text: ``[name](tpl,...)`` sections with ``key = value`` / ``key => value``."""
    out: list[Section] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if m:
            templates = tuple(t.strip() for t in (m.group(2) or "").split(",") if t.strip())
            out.append((m.group(1), templates, {}))
            continue
        key, _, value = re.split(r"\s*(=>|=)\s*", line, maxsplit=1)
        assert out, f"option outside a section: {raw!r}"
        out[-1][2].setdefault(key, []).append(value)
    return out


@pytest.fixture
def site() -> Site:
    return parse_site(site_data())


@pytest.fixture
def files(site: Site) -> dict[str, str]:
    return generated_files(site, fake_secrets(site), "127.0.0.1", 4573)


def test_every_seat_gets_endpoint_auth_and_aor(site: Site, files: dict[str, str]) -> None:
    secrets = fake_secrets(site)
    parsed = sections(files["pjsip_seats.conf"])
    expected_template = {s: "seat-endpoint" for svc in Service
                         for s in (*site.operators[svc], *site.linkage[svc])}
    expected_template |= {s: "supervisor-endpoint" for s in site.supervisors}
    assert set(expected_template) == set(site.all_seats)
    for seat, template in expected_template.items():
        mine = [(tpls, opts) for name, tpls, opts in parsed if name == seat]
        assert [tpls for tpls, _ in mine] == [(template,), ("seat-auth",), ("seat-aor",)], seat
        endpoint, auth, _aor = (opts for _, opts in mine)
        assert endpoint["auth"] == [seat] and endpoint["aors"] == [seat]
        assert auth["username"] == [seat]
        assert auth["password"] == [secrets.sip_passwords[seat]]
    assert {name for name, _, _ in parsed} == set(site.all_seats)


def test_every_seat_is_qualified_so_a_vanished_phone_is_not_rung(site: Site, files: dict[str, str]) -> None:
    parsed = sections(files["pjsip_seats.conf"])
    aors = [opts for name, tpls, opts in parsed if tpls == ("seat-aor",)]
    assert len(aors) == len(site.all_seats)
    assert all(aor["qualify_frequency"] == [str(site.qualify_s)] and aor["qualify_timeout"] == ["3.0"]
               for aor in aors)
    off = generated_files(dataclasses.replace(site, qualify_s=0), fake_secrets(site), "127.0.0.1", 4573)
    assert "qualify_frequency" not in off["pjsip_seats.conf"]


def test_seat_templates_exist_in_pjsip_conf() -> None:
    pjsip = (CONF_DIR / "pjsip.conf").read_text(encoding="utf-8")
    defined = {name: tpls for name, tpls, _ in sections(pjsip)}
    for tpl in ("seat-endpoint", "supervisor-endpoint", "seat-auth", "seat-aor", "trunk-endpoint"):
        assert "!" in defined[tpl], f"{tpl} must be a template in pjsip.conf"


def test_trunk_identify_matches_each_trunk_host(site: Site, files: dict[str, str]) -> None:
    parsed = {name + "/" + ",".join(tpls): opts for name, tpls, opts in sections(files["pjsip_trunk.conf"])}
    identify = parsed["trunk-identify/"]
    assert identify["type"] == ["identify"] and identify["endpoint"] == ["trunk"]
    assert identify["match"] == list(site.trunk_hosts)
    assert parsed["trunk/trunk-endpoint"]["aors"] == ["trunk"]


def test_queue_members_are_the_platforms_operators(site: Site, files: dict[str, str]) -> None:
    for svc in Service:
        members = files[f"queue_members_{QUEUE_BY_SERVICE[svc]}.conf"].splitlines()
        assert members == [f"member => PJSIP/{s},0,{s}" for s in site.operators[svc]]
        linkage = files[f"queue_members_{LINKAGE_QUEUE[svc]}.conf"].splitlines()
        assert linkage == [f"member => PJSIP/{s},0,{s}" for s in site.linkage[svc]]
    # nobody rings in the other platform's queue
    q12345 = files[f"queue_members_{QUEUE_BY_SERVICE[Service.HOTLINE_12345]}.conf"]
    assert all(f"PJSIP/{s}," not in q12345 for s in site.operators[Service.POLICE_110])


def test_numbers_route_each_dialled_number_to_intake(site: Site, files: dict[str, str]) -> None:
    routes = re.findall(r"^exten => ([^,]+),1,Goto\(([^,]+),([^,]+),1\)$", files["numbers.conf"], re.M)
    expected = [(num, CTX_INTAKE, svc.value) for svc in Service for num in site.numbers[svc]]
    assert routes == expected
    assert len(files["numbers.conf"].splitlines()) == len(expected)


def test_manager_users_are_loopback_only_and_least_privilege(files: dict[str, str]) -> None:
    users = {name: opts for name, _, opts in sections(files["manager_users.conf"])}
    assert set(users) == {AMI_USER, AMI_ADMIN_USER}
    for name, opts in users.items():
        assert opts["deny"] == ["0.0.0.0/0.0.0.0"], name
        assert opts["permit"] == ["127.0.0.1/255.255.255.255"], name
        assert opts["secret"] and opts["secret"][0], name
        privs = {p for key in ("read", "write") for v in opts.get(key, []) for p in v.split(",")}
        assert "command" not in privs and "all" not in privs, name

    def privs(user: str, key: str) -> set[str]:
        return set(users[user][key][0].split(","))

    assert privs(AMI_USER, "read") == {"call", "agent", "reporting", "user", "dtmf"}
    assert privs(AMI_USER, "write") == {"call", "originate", "agent", "reporting"}
    # a reload needs `system` only: no config write, no reporting for the admin user
    assert privs(AMI_ADMIN_USER, "write") == {"system"}
    assert privs(AMI_ADMIN_USER, "read") == {"system"}
    assert "system" not in privs(AMI_USER, "read") | privs(AMI_USER, "write")
    assert users[AMI_USER]["secret"] != users[AMI_ADMIN_USER]["secret"]


def test_manager_general_and_rtp_use_the_site(site: Site, files: dict[str, str]) -> None:
    assert files["manager_general.conf"] == f"bindaddr = {site.ami_bind}\nport = {site.ami_port}\n"
    assert files["rtp_ports.conf"] == f"rtpstart = {site.rtp_start}\nrtpend = {site.rtp_end}\n"
    assert f"bind = {site.sip_bind}:{site.sip_port}" in files["pjsip_transport.conf"]
    assert files["globals.conf"].startswith("HOTLINE_AGI=127.0.0.1:4573\n")
    assert "HOTLINE_SEAT_FEATURES=hotline-onetouch#hotline-threeway\n" in files["globals.conf"]


def test_every_seat_can_be_dialled_from_another_seat(site: Site, files: dict[str, str]) -> None:
    dialled = re.findall(r"^exten => (\d+),1,Dial\(PJSIP/(\d+),", files["seat_dial.conf"], re.M)
    assert dialled == [(s, s) for s in site.all_seats]


INCLUDE_RE = re.compile(r'^\s*#include\s+"?generated/([^"\s]+)"?', re.M)


def test_render_copies_the_tree_and_every_include_exists(tmp_path: Path, site: Site) -> None:
    dest = tmp_path / "etc"
    render(CONF_DIR, dest, site, fake_secrets(site), agi_host="127.0.0.1", agi_port=4573)
    sources = sorted(p.name for p in CONF_DIR.glob("*.conf"))
    assert sources and all((dest / name).read_bytes() == (CONF_DIR / name).read_bytes() for name in sources)
    included = {m for name in sources for m in INCLUDE_RE.findall((dest / name).read_text(encoding="utf-8"))}
    assert included, "no #include \"generated/...\" found; the include pattern is out of date"
    generated = {p.name for p in (dest / "generated").iterdir()}
    assert included - generated == set(), "included but not generated"
    assert generated - included == set(), "generated but never included (dead configuration)"
    assert not (dest / "asterisk.conf").exists()  # only rendered for an instance


def test_render_for_an_instance_fills_every_placeholder(tmp_path: Path, site: Site) -> None:
    paths = InstancePaths(rootfs=tmp_path / "rootfs", name="t1")
    render(CONF_DIR, tmp_path / "etc", site, fake_secrets(site), agi_host="127.0.0.1", agi_port=4573,
           paths=paths, system_name="hotline-t1")
    text = (tmp_path / "etc" / "asterisk.conf").read_text(encoding="utf-8")
    assert re.search(r"@[A-Z]+@", text) is None
    assert "astetcdir => /srv/hotline/t1/etc" in text
    assert "systemname = hotline-t1" in text


def test_render_twice_is_stable(tmp_path: Path, site: Site) -> None:
    secrets = fake_secrets(site)
    for d in ("a", "b"):
        render(CONF_DIR, tmp_path / d, site, secrets, agi_host="127.0.0.1", agi_port=4573)
        render(CONF_DIR, tmp_path / d, site, secrets, agi_host="127.0.0.1", agi_port=4573)
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert a == b


# --- secrets --------------------------------------------------------------------------------------

def test_ensure_secrets_creates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.json"
    s = ensure_secrets(path, ["1201", "1101"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(s.sip_passwords) == {"1201", "1101"}
    assert len(set(s.sip_passwords.values())) == 2 and all(len(p) >= 16 for p in s.sip_passwords.values())
    assert s.ami_secret and len(s.ami_secret) >= 16
    assert not path.with_suffix(".tmp").exists()


def test_ensure_secrets_keeps_existing_values_and_adds_new_seats(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = ensure_secrets(path, ["1201", "1101"])
    again = ensure_secrets(path, ["1201", "1101"])
    assert again == first
    grown = ensure_secrets(path, ["1201", "1101", "1202"])
    assert {k: grown.sip_passwords[k] for k in ("1201", "1101")} == first.sip_passwords
    assert grown.sip_passwords["1202"] not in first.sip_passwords.values()
    assert grown.ami_secret == first.ami_secret and grown.api_tokens == first.api_tokens
    assert load_secrets(path) == grown
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ensure_secrets_makes_a_loose_file_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    ensure_secrets(path, ["1201"])
    path.chmod(0o644)
    ensure_secrets(path, ["1201"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_one_api_token_per_role(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    s = ensure_secrets(path, [])
    roles = [who["role"] for who in s.api_tokens.values()]
    assert sorted(roles) == sorted(API_ROLES)
    assert len(set(s.api_tokens)) == len(API_ROLES)
    for role in API_ROLES:
        assert s.api_tokens[s.token_for(role)]["role"] == role
    assert ensure_secrets(path, []).api_tokens == s.api_tokens
    with pytest.raises(KeyError):
        s.token_for("root")


# --- settings -------------------------------------------------------------------------------------

def test_settings_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.effective_database_url == f"sqlite+aiosqlite:///{s.state_dir / 'hotline.db'}"
    assert s.effective_api_base_url == "http://127.0.0.1:8080"
    assert s.secrets_file == s.state_dir / "secrets.json"


def test_settings_parse_ints_and_lists(tmp_path: Path) -> None:
    s = Settings.from_env({
        "HOTLINE_API_PORT": " 8081 ", "HOTLINE_AGI_PORT": "4574", "HOTLINE_AGI_BUDGET_MS": "250",
        "HOTLINE_AGI_ALLOWED_HOSTS": "10.0.0.1, ::1,,", "HOTLINE_API_URL": "http://api:9000/",
        "HOTLINE_STATE_DIR": str(tmp_path), "HOTLINE_LOG_LEVEL": "debug",
    })
    assert (s.api_port, s.agi_port, s.agi_budget_ms) == (8081, 4574, 250)
    assert s.agi_allowed_hosts == ("10.0.0.1", "::1")
    assert s.effective_api_base_url == "http://api:9000"
    assert s.state_dir == tmp_path.resolve() and s.log_level == "DEBUG"


@pytest.mark.parametrize(("name", "value"), [
    ("HOTLINE_API_PORT", "eighty"), ("HOTLINE_API_PORT", "0"), ("HOTLINE_API_PORT", "65536"),
    ("HOTLINE_AGI_PORT", "4573.0"), ("HOTLINE_AGI_BUDGET_MS", "5"), ("HOTLINE_AGI_BUDGET_MS", "-400"),
])
def test_settings_bad_int_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(("url", "expected"), [
    ("postgres://u:p@db:5432/hotline", "postgresql+asyncpg://u:p@db:5432/hotline"),
    ("postgresql://u@db/hotline", "postgresql+asyncpg://u@db/hotline"),
    ("postgresql+asyncpg://u@db/hotline", "postgresql+asyncpg://u@db/hotline"),
    ("sqlite:///var/hotline.db", "sqlite+aiosqlite:///var/hotline.db"),
    ("sqlite:////abs/hotline.db", "sqlite+aiosqlite:////abs/hotline.db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
])
def test_database_url_gets_the_async_driver(url: str, expected: str) -> None:
    s = Settings.from_env({"DATABASE_URL": url})
    assert s.database_url == expected == s.effective_database_url


@pytest.mark.parametrize(("raw", "value"), [
    ("1", True), ("true", True), ("YES", True), (" on ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_parse_bool(raw: str, value: bool) -> None:
    assert parse_bool("X", raw) is value


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled", "truee"])
def test_parse_bool_rejects_other_words(raw: str) -> None:
    with pytest.raises(SettingsError, match="HOTLINE_FLAG_X"):
        parse_bool("HOTLINE_FLAG_X", raw)


def test_feature_flags() -> None:
    s = Settings.from_env({"HOTLINE_FLAG_TRANSCRIBE": "yes", "HOTLINE_FLAG_BAD": "sure", "OTHER": "1"})
    assert s.flag("transcribe") is True
    assert s.flag("missing") is False and s.flag("missing", default=True) is True
    assert "OTHER" not in s.extra
    with pytest.raises(SettingsError, match="HOTLINE_FLAG_BAD"):
        s.flag("bad")


def test_parse_int_bounds() -> None:
    assert parse_int("N", "10", 10, 10) == 10
    with pytest.raises(SettingsError, match="outside"):
        parse_int("N", "11", 0, 10)


# --- phone numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "clean"), [
    ("13800138000", "13800138000"),
    ('"Zhang San" <13800138000>', "13800138000"),
    ("sip:13800138000@10.0.0.1", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("*43#", "*43#"),
    ("1380\r\nEvent: Hangup", "1380"),
    ("<unknown>", "anonymous"),
    ("anonymous", "anonymous"),
    ("", "anonymous"),
    (None, "anonymous"),
    ("9" * 100, "9" * MAX_NUMBER_LEN),
])
def test_clean_number(raw: str | None, clean: str) -> None:
    assert clean_number(raw) == clean


@pytest.mark.parametrize(("number", "masked"), [
    ("13800138000", "138****8000"),
    ("01087654321", "010****4321"),
    ("1234", "****"),
    ("110", "***"),
    ("", "-"),
    (None, "-"),
])
def test_mask_number(number: str | None, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize("length", [n for n in range(1, MAX_NUMBER_LEN + 1) if n != 5])
def test_mask_number_never_logs_the_whole_number(length: int) -> None:
    number = "".join(str(i % 10) for i in range(1, length + 1))
    masked = mask_number(number)
    assert masked != number and len(masked) == length and "*" in masked


MASK_FIVE_BUG = (
    "mask_number('95555') returns '95555': for 5-digit numbers the 1-char prefix plus the last four "
    "cover the whole number, so a 5-digit caller is logged unmasked"
)


def test_mask_number_masks_five_digit_numbers() -> None:
    assert "*" in mask_number("95555")


def test_admin_ami_user_has_its_own_secret(tmp_path: Path) -> None:
    from hotline.secrets import ensure_secrets

    s = ensure_secrets(tmp_path / "secrets.json", ["1201"])
    assert s.ami_admin_secret and s.ami_admin_secret != s.ami_secret
    assert s.ami_secret not in s.ami_admin_secret
    site = load_site(REPO / "site.toml") if "REPO" in globals() else None
    if site is not None:
        users = generated_files(site, ensure_secrets(tmp_path / "s2.json", site.all_seats),
                                "127.0.0.1", 4573)["manager_users.conf"]
        assert users.count("secret = ") == 2


def test_supervisor_codes_and_transfers_match_seat_numbers_only(files: dict[str, str]) -> None:
    """Only digits of a seat's length follow a supervisor code or a transfer's platform: the dialplan
    never sees `1${SHELL(...)}` as a seat, whoever dials it (a phone or the API through AMI)."""
    codes = re.findall(r"^exten => (\S+?),1,", files["supervisor_codes.conf"], re.M)
    assert codes and all(re.fullmatch(r"_\*7[0-2]X{4}", c) for c in codes), codes
    xfer = re.findall(r"^exten => (\S+?),1,", files["transfer_patterns.conf"], re.M)
    assert sorted(xfer) == ["_110-XXXX", "_12345-XXXX"]

