"""The console's pages: login, the operator's desk, the supervisor's wallboard, admin, department.

Server-rendered with Jinja2 (``aiohttp_jinja2``, autoescaping on); each page's script talks to
:mod:`app.console.api` and the WebSockets, so nothing needs a reload. No inline script or style: the
Content-Security-Policy allows only this origin's files, and the page passes its data to its script in
``data-`` attributes. Static files are served from a fixed list (no path from the URL reaches the
file system).

Login: the form carries a one-time token that must match a ``SameSite=Strict`` cookie set with the
form (login CSRF); a successful login sets the session cookie (HttpOnly, SameSite=Strict, Secure
when served over HTTPS) and sends the person to their role's page.
"""

from __future__ import annotations

import hmac
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from app import keys
from app.accounts.store import LoginRefused
from app.auth import ADMIN, DEPARTMENT, OPERATOR, READERS, SUPERVISOR, page, public, requires
from app.endpoint import endpoint
from app.middleware import LOGIN_PAGE, SESSION_COOKIE

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PRELOGIN_COOKIE = "hotline_login"
HOME = {OPERATOR: "/console/desk", SUPERVISOR: "/console/wallboard", ADMIN: "/console/admin",
        DEPARTMENT: "/console/department"}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain", ".svg": "image/svg+xml",
          ".png": "image/png"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _assets() -> dict[str, Path]:
    """Every file the console may serve, by name: its own and the vendored libraries."""
    files = {p.name: p for p in STATIC.glob("*") if p.is_file() and p.suffix in _TYPES}
    vendor = STATIC / "vendor"
    if vendor.is_dir():
        files.update({p.name: p for p in vendor.glob("*") if p.is_file() and p.suffix in _TYPES})
    return files


def _harden(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _render(name: str, request: web.Request, context: dict[str, Any]) -> web.StreamResponse:
    who = request.get(keys.PRINCIPAL)
    base = {"who": who, "csrf": request.get(keys.CSRF, ""), "site": request.app[keys.SITE].name,
            "charts": "uplot.min.js" in request.app[ASSETS], "home": HOME.get(who.role) if who else None}
    return _harden(aiohttp_jinja2.render_template(name, request, {**base, **context}))


@endpoint("The console's entry: the login page, or the page of the person's role")
@public
async def root(request: web.Request) -> web.StreamResponse:
    return _see_other("/console/")


@endpoint("Console home: sends the person to their role's page")
@page
@requires(*READERS, DEPARTMENT)
async def home(request: web.Request) -> web.StreamResponse:
    return _see_other(HOME.get(request[keys.PRINCIPAL].role, LOGIN_PAGE))


@endpoint("The login form")
@public
async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request, None, status=200)


def _login_page(request: web.Request, error: str | None, *, status: int) -> web.StreamResponse:
    token = secrets.token_urlsafe(24)
    nxt = request.query.get("next", "")
    resp = _harden(aiohttp_jinja2.render_template("login.html", request, {
        "token": token, "error": error, "next": nxt if _local(nxt) else "",
        "site": request.app[keys.SITE].name, "who": None}, status=status))
    resp.set_cookie(PRELOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/console/login",
                    secure=request.app[keys.SETTINGS].cookie_secure, max_age=3600)
    return resp


def _local(path: str) -> bool:
    """A page of this console only (no open redirect to another site)."""
    return path.startswith("/console/") and "//" not in path and "\\" not in path and len(path) < 200


@endpoint("Log in (form: login, password, token)")
@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token, cookie = str(form.get("token", "")), request.cookies.get(PRELOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
        return _login_page(request, "登录页面已过期，请重新输入", status=403)
    login = str(form.get("login", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    store = request.app[keys.ACCOUNTS]
    try:
        session = await store.login(login, password, address=request.remote,
                                    agent=request.headers.get("User-Agent"))
    except LoginRefused as exc:
        text = str(exc)
        if exc.locked_until:
            text += f"（{max(1, round((exc.locked_until - time.time()) / 60))} 分钟后再试）"
        await request.app[keys.CALLS].audit_login(login, False, request.remote, text)
        return _login_page(request, text, status=401)
    await request.app[keys.CALLS].audit_login(login, True, request.remote, "")
    nxt = str(form.get("next", ""))
    resp = _see_other(nxt if _local(nxt) else HOME.get(session.account.role, "/console/"))
    resp.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="Strict", path="/",
                    secure=request.app[keys.SETTINGS].cookie_secure, max_age=int(store.max_s))
    resp.del_cookie(PRELOGIN_COOKIE, path="/console/login")
    return resp


def _see_other(location: str) -> web.Response:
    return _harden(web.Response(status=303, headers={"Location": location}))  # type: ignore[return-value]


@endpoint("Log out: the session ends")
@requires(*READERS, DEPARTMENT)
async def logout(request: web.Request) -> web.StreamResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await request.app[keys.ACCOUNTS].logout(cookie)
    resp = _see_other(LOGIN_PAGE)
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


@endpoint("The operator's desk")
@page
@requires(OPERATOR)
async def desk_page(request: web.Request) -> web.StreamResponse:
    site = request.app[keys.SITE]
    return _render("desk.html", request, {"linkage": list(site.linkage_dial) or
                                          ["119", "120", "122", "water", "power", "gas", "heating"]})


@endpoint("The supervisor's wallboard")
@page
@requires(SUPERVISOR, ADMIN)
async def wallboard_page(request: web.Request) -> web.StreamResponse:
    site = request.app[keys.SITE]
    return _render("wallboard.html", request, {"supervisors": list(site.supervisors)})


@endpoint("The admin page")
@page
@requires(ADMIN)
async def admin_page(request: web.Request) -> web.StreamResponse:
    return _render("admin.html", request, {})


@endpoint("A department's page: its orders and their forms")
@page
@requires(DEPARTMENT)
async def department_page(request: web.Request) -> web.StreamResponse:
    return _render("department.html", request, {})


@endpoint("A console file (scripts, styles, vendored libraries)")
@public
async def asset(request: web.Request) -> web.StreamResponse:
    path = request.app[ASSETS].get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    resp = web.FileResponse(path, headers={"Content-Type": _TYPES[path.suffix],
                                           "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-cache"})
    return resp


ASSETS = web.AppKey("console_assets", dict)


def setup_routes(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=jinja2.select_autoescape(("html",), default=True),
                         undefined=jinja2.StrictUndefined)
    app[ASSETS] = _assets()
    app.router.add_get("/", root)
    app.router.add_get("/console/", home)
    app.router.add_get(LOGIN_PAGE, login_form)
    app.router.add_post(LOGIN_PAGE, login_submit)
    app.router.add_post("/console/logout", logout)
    app.router.add_get("/console/desk", desk_page)
    app.router.add_get("/console/wallboard", wallboard_page)
    app.router.add_get("/console/admin", admin_page)
    app.router.add_get("/console/department", department_page)
    app.router.add_get("/console/static/{name}", asset)
