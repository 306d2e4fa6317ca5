"""``create_app(settings)``: the HTTP API of ``journey serve``, and the console's static files.

Every document is the one the CLI prints with ``--json`` (the same functions build it), with
the personal fields the caller's role may not see replaced by ``"[hidden]"``
(journey/api/policy.py, docs/security.md). Errors are always ``{"error": text, "detail":
...}``: 400 malformed JSON, 401 no or bad token, 403 the role may not, 404 nobody or nothing
known by that name, 409 an ambiguous tracking key, 413 a request too large (too many facts,
or a body over the limit), 422 input that breaks the contract (a bad reference, instant,
parameter, or rejected facts).

Endpoints are plain functions run in the server's thread pool; each takes the desk's lock for
the Journey (journey/api/service.py), so one DuckDB connection serves them one at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import catalogue
from domain.contact_policy import CHANNELS, PURPOSES, REASON_CODES
from domain.errors import InvalidFact
from journey.api import policy
from journey.api.policy import HIDDEN, Permission, permitted
from journey.api.service import Desk
from journey.api.tokens import Expired, Token, TokenError, TokenRevoked, TokenStore, open_tokens
from journey.bootstrap import Journey
from journey.config import Settings
from journey.references import reference_key
from journey.usecases import audit, customers
from journey.usecases import cases as case_queries
from journey.usecases import erasure as erasure_queries
from journey.usecases import quarantine as quarantine_queries
from journey.usecases import replay as replay_queries
from journey.usecases import service as service_queries
from journey.usecases.contact import ContactQuestionError, UnknownCustomer, contact_decision, violations
from journey.usecases.customers import LATEST_EVENTS as CUSTOMER_TIMELINE
from journey.usecases.customers import UnknownPosition
from journey.usecases.paging import DEFAULT_LIMIT, MAX_LIMIT, Page
from journey.usecases.recording import record_facts

access_log = logging.getLogger("journey.api.access")

COOKIE = "journey_token"
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
#: Facts in one POST: larger loads belong in ``journey append`` (a file, batches, rejects file).
MAX_FACTS = 10_000
#: The scope key under which a request carries what the access log says about it.
_ACCESS = "journey.access"


class JSONDocument(Response):
    """orjson, like the CLI's ``--json``: the same bytes for the same document, and fast."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, for people")
    detail: Any = Field(default=None, description="machine-readable particulars, or null")


class SessionBody(BaseModel):
    token: str = Field(description="an API token's secret (journey token create)")


#: The days a token may be given: 0 (never expires) to a hundred years.
_DAYS = Field(default=None, ge=0, le=36_500, allow_inf_nan=False,
              description="its lifetime in days from now (0: never expires); default "
                          "JOURNEY_TOKEN_DAYS of the server")


class NewToken(BaseModel):
    name: str
    role: str = Field(description=f"one of {', '.join(policy.ROLES)}")
    department: str | None = None
    days: float | None = _DAYS


class Rotation(BaseModel):
    days: float | None = _DAYS


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {400: "malformed JSON", 401: "no token, or an unknown, expired or revoked one",
             403: "the token's role may not do this", 404: "nobody or nothing known by that name",
             409: "ambiguous: several cases have that tracking key; or a revoked token to rotate",
             413: "too many facts, or a body larger than the limit, in one request",
             415: "a signed-in browser must send Content-Type: application/json",
             422: "input that breaks the contract"}
    return {code: {"model": ErrorBody, "description": words[code]} for code in codes}



# -------------------------------------------------------------------- auth


def _access(request: Request) -> dict[str, Any]:
    info: dict[str, Any] = request.scope.setdefault(_ACCESS, {})
    return info


def _secret(request: Request) -> tuple[str | None, str | None]:
    """(secret, where it came from): the Authorization header wins over the cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "bearer"
        return None, "authorization header"
    cookie = request.cookies.get(COOKIE)
    return (cookie, "cookie") if cookie else (None, None)


def _tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.tokens
    return tokens


def principal(request: Request) -> Token:
    """The caller's token; 401 without a valid one (saying so when it expired, and when)."""
    secret, where = _secret(request)
    if secret is None:
        reason = ("Authorization header is not 'Bearer <secret>'" if where else
                  "no token: send 'Authorization: Bearer <secret>' or sign in (POST /api/session)")
        raise _unauthenticated(request, reason)
    store = _tokens(request)
    try:
        if where == "cookie":
            token = store.session(secret)
            unknown = "signed out, or an unknown, rotated or revoked token (cookie): sign in again"
        else:
            token = store.authenticate(secret)
            unknown = f"unknown or revoked token ({where})"
    except Expired as expired:
        raise _expired(request, expired, where) from None
    if token is None:
        raise _unauthenticated(request, unknown)
    info = _access(request)
    info.update(name=token.name, role=token.role, via=where)
    return token


def _unauthenticated(request: Request, reason: str, detail: Any = None) -> ApiError:
    _access(request)["reason"] = reason
    return ApiError(401, reason, detail, headers={"WWW-Authenticate": 'Bearer realm="journey"'})


def _expired(request: Request, expired: Expired, where: str | None) -> ApiError:
    """401 that says what expired and when (the console shows it on its sign-in form)."""
    _access(request).update(name=expired.name, role=expired.role)
    return _unauthenticated(request, f"{expired.message} ({where})",
                            {"expired": expired.what, "token": expired.name,
                             "expired_at": expired.expired_at})


def _forbidden(request: Request, token: Token, reason: str) -> ApiError:
    _access(request)["reason"] = reason
    return ApiError(403, reason, {"role": token.role})


def require(permission: Permission) -> Callable[[Request, Token], Token]:
    def check(request: Request, token: Annotated[Token, Depends(principal)]) -> Token:
        if not permitted(token.role, permission):
            raise _forbidden(request, token, f"role {token.role!r} may not {permission.value}")
        return token
    return check


Reader = Annotated[Token, Depends(require(Permission.READ_CUSTOMERS))]
ListReader = Annotated[Token, Depends(require(Permission.READ_LISTS))]
Writer = Annotated[Token, Depends(require(Permission.WRITE_FACTS))]
Admin = Annotated[Token, Depends(require(Permission.MANAGE_TOKENS))]
Anyone = Annotated[Token, Depends(principal)]


Ref = Annotated[str, PathParam(
    description="+34..., @handle, e-mail, customer number, ledger id, or kind:value",
    min_length=1, max_length=200)]
Now = Annotated[str | None, Query(
    description="judge clocks at this instant (ISO 8601 with offset, or a date); default now",
    max_length=64)]
#: The largest ``offset`` a list takes: far past any list, and within what the database counts in.
MAX_OFFSET = 1_000_000_000
Limit = Annotated[int, Query(
    ge=1, le=MAX_LIMIT,
    description=f"rows on the page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); `total` in the "
                "answer counts every matching row")]
Offset = Annotated[int, Query(
    ge=0, le=MAX_OFFSET,
    description="rows to skip before the page (0: from the first); an offset at or past "
                "`total` gives an empty page, not an error")]


def _key(request: Request, token: Token, ref: str, what: str = "reference") -> str:
    """The identity key ``ref`` names; 422 when it names none, 403 when the caller's role
    may not see that kind of identity (looking somebody up by it would confirm the value)."""
    try:
        key = reference_key(ref)
    except InvalidFact as error:
        raise ApiError(422, f"{what} {ref!r}: {error}") from None
    kind = key.split(":", 1)[0]
    if kind in policy.hidden_kinds(token.role):
        raise _lookup_forbidden(request, token, kind)
    return key


def _lookup_forbidden(request: Request, token: Token, kind: str) -> ApiError:
    """The one answer to a lookup by a kind of identity the role may not see, decided before
    (or whatever) the lookup finds: it must not tell a value somebody has from one nobody has."""
    return _forbidden(request, token, f"role {token.role!r} may not look customers up by {kind}")


def _hidden_kind(token: Token, text: str) -> str | None:
    """The kind of identity ``text`` names when the caller's role may not look customers up by
    it; None when it may, or when ``text`` names no identity at all."""
    try:
        kind = reference_key(text).split(":", 1)[0]
    except InvalidFact:
        return None
    return kind if kind in policy.hidden_kinds(token.role) else None


def _doc(token: Token, doc: Any, status: int = 200) -> JSONDocument:
    return JSONDocument(policy.field_policy(token.role).redact(doc), status_code=status)


# -------------------------------------------------------------------- access log


class AccessLog:
    """One line per API request on ``journey.api.access``: who (token name and role, never the
    secret), what (method, path), the status, and for 401/403 the reason."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api"):
            await self.app(scope, receive, send)
            return
        info: dict[str, Any] = {}
        scope[_ACCESS] = info
        started = time.perf_counter()
        status = 500

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - started) * 1000
            who = f"{info['name']} ({info['role']})" if "name" in info else "-"
            level = logging.WARNING if status in (401, 403) else logging.INFO
            if access_log.isEnabledFor(level):
                reason = f" reason={info['reason']!r}" if "reason" in info else ""
                access_log.log(level, "%s %s %s %d %.1fms%s", who, scope["method"], scope["path"],
                               status, ms, reason,
                               extra={"token_name": info.get("name"), "token_role": info.get("role"),
                                      "path": scope["path"], "status": status,
                                      "reason": info.get("reason")})


# -------------------------------------------------------------------- the app


def create_app(settings: Settings, *, journey: Journey | None = None,
               duties: Sequence[Callable[[Journey], None]] | None = None,
               tick_seconds: float = 1.0, tokens: TokenStore | None = None,
               commands: Mapping[str, Callable[[Any, Journey], int]] | None = None) -> FastAPI:
    """The API over the ledger ``settings`` name; ``journey``: an already open one to use
    (closed by its owner); ``duties``: instead of journey.api.duties.DUTIES; ``commands``: the
    CLI commands that commands started beside the server hand over to it (journey/api/forward.py;
    none: every such command runs on its own)."""
    desk = Desk(settings, journey, duties, tick_seconds)
    token_store = tokens or open_tokens(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        desk.start()
        try:
            yield
        finally:
            await run_in_threadpool(desk.close)

    app = FastAPI(
        title="Customer-journey ledger",
        version="1",
        description=__doc__ or "",
        default_response_class=JSONDocument,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.desk = desk
    app.state.tokens = token_store
    app.add_middleware(AccessLog)
    _handlers(app)
    _routes(app, desk)
    _desk_routes(app, desk)
    from journey.api.forward import install as take_commands  # commands run beside the server

    take_commands(app, desk, settings, commands or {})
    if CONSOLE_DIR.is_dir():
        app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return JSONDocument({"error": error.error, "detail": error.detail},
                            status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                    for e in error.errors()]
        if any(e.get("type") == "json_invalid" for e in error.errors()):
            return JSONDocument({"error": "the body is not valid JSON", "detail": problems},
                                status_code=400)
        text = "; ".join(f"{p['where']}: {p['problem']}" for p in problems)
        return JSONDocument({"error": text or "invalid request", "detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return JSONDocument({"error": str(error.detail), "detail": None},
                            status_code=error.status_code, headers=error.headers)


def _routes(app: FastAPI, desk: Desk) -> None:
    @app.get("/api/health", tags=["server"], summary="the server is up (no token needed)")
    def health() -> Response:
        return JSONDocument({"status": "ok"})

    @app.get("/api/status", tags=["server"], responses=_errors(401),
             summary="positions, row counts and the facts the projection quarantined "
                     "(journey status --json)")
    def status(token: Anyone) -> Response:
        from projections import quarantine

        with desk.fresh() as journey:
            store = journey.projections
            doc = {"store_position": journey.app.recorder.max_notification_id() or 0,
                   "projection_position": store.position(),
                   **{f"{k}_rows": v for k, v in store.table_counts().items()},
                   **quarantine.status(store.con)}
        return _doc(token, doc)

    @app.get("/api/me", tags=["session"], responses=_errors(401),
             summary="who the token belongs to, and the fact types its role may record",
             description="`may_record` lists, in catalogue order, the fact types the role may "
                         "record through POST /api/facts (docs/security.md, \"Who records "
                         "what\"): the console shows a desk only the forms it may submit. Empty "
                         "for a role that records nothing.")
    def me(token: Anyone) -> Response:
        writes = permitted(token.role, Permission.WRITE_FACTS)
        recordable = [name for name, spec in catalogue.TYPES.items()
                      if writes and not spec.system and policy.may_record(token.role, name)]
        return JSONDocument({"name": token.name, "role": token.role, "department": token.department,
                             "may_record": recordable})

    @app.post("/api/session", tags=["session"], responses=_errors(400, 401, 422),
              summary="sign a browser in: sets the HttpOnly, SameSite=Strict journey_token cookie",
              description="The cookie holds a sign-in of its own, not the token's secret: it ends "
                          "after JOURNEY_SESSION_HOURS (or when the token expires, is rotated or "
                          "revoked, if that comes first) and on sign-out. `expires_at` says when; "
                          "an expired token is refused with 401 saying since when.")
    def sign_in(body: SessionBody, request: Request) -> Response:
        try:
            session = _tokens(request).sign_in(body.token)
        except Expired as expired:
            raise _expired(request, expired, "sign-in") from None
        if session is None:
            raise _unauthenticated(request, "unknown or revoked token (sign-in)")
        token = session.token
        _access(request).update(name=token.name, role=token.role, via="sign-in")
        response = JSONDocument({"name": token.name, "role": token.role,
                                 "department": token.department, "expires_at": session.expires_at})
        response.set_cookie(COOKIE, session.secret, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @app.delete("/api/session", tags=["session"], summary="sign out: ends the sign-in and clears the cookie")
    def sign_out(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE)
        if cookie:
            _tokens(request).sign_out(cookie)
        response = JSONDocument({"signed_out": True})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    # ---------------------------------------------------------------- customers

    @app.get("/api/customers/{ref}", tags=["customers"], responses=_errors(401, 403, 404, 422),
             summary="the unified customer view (journey customer REF --json), latest "
                     f"{CUSTOMER_TIMELINE} timeline events")
    def customer(ref: Ref, request: Request, token: Reader) -> Response:
        key = _key(request, token, ref)
        with desk.fresh() as journey:
            customer_id = _resolve(desk, journey, ref, key)
            reads = desk.reads
            doc = customers.latest_document(reads.view(journey, customer_id),
                                            reads.timeline(journey, customer_id), reads.position,
                                            rules=journey.projections.rules)
        return _doc(token, doc)

    @app.get("/api/customers/{ref}/timeline", tags=["customers"],
             responses=_errors(401, 403, 404, 422),
             summary="a customer's timeline, newest first, a page at a time",
             description="Events ordered by when they happened (then store position), newest "
                         "first. Page with `before` (a cursor: the `next_before` of the previous "
                         "page, the position of its last event; `next_before` is null on the "
                         "last page) or `offset` (events to skip from the newest), not both. "
                         "Every page says its `offset` and the `total` of events.")
    def timeline(ref: Ref, request: Request, token: Reader,
                 limit: Annotated[int, Query(
                     ge=1, le=500, description=f"events on the page, 1 to 500 (default "
                                               f"{CUSTOMER_TIMELINE})")] = CUSTOMER_TIMELINE,
                 before: Annotated[int | None, Query(
                     ge=0, description="continue after this event: the previous page's "
                                       "`next_before`")] = None,
                 offset: Annotated[int | None, Query(
                     ge=0, le=MAX_OFFSET,
                     description="events to skip from the newest (instead of `before`); past "
                                 "`total`: an empty page")] = None) -> Response:
        key = _key(request, token, ref)
        with desk.fresh() as journey:
            customer_id = _resolve(desk, journey, ref, key)
            try:
                doc = customers.timeline_page(customer_id, desk.reads.timeline(journey, customer_id),
                                              desk.reads.position, limit=limit, before=before,
                                              offset=offset)
            except UnknownPosition as error:
                raise ApiError(422, str(error), {"before": before, "offset": offset}) from None
        return _doc(token, doc)

    @app.get("/api/customers/{ref}/as-of", tags=["customers"],
             responses=_errors(401, 403, 404, 422),
             summary="the customer's view at an instant, folded from the event store "
                     "(journey customer REF --occurred-by T | --as-of T --json), one page of "
                     "its timeline",
             description="Exactly one of `occurred_by` (what had happened by T, including facts "
                         "recorded later: they are listed in `recorded_late`) and `recorded_by` "
                         "(what the ledger knew at T). T is an ISO 8601 instant with its offset. "
                         "`timeline` and `recorded_late` hold the latest `limit` entries (the "
                         "oldest with `order=oldest`); `timeline_page.total` and "
                         "`recorded_late_page.total` count them all.")
    def customer_as_of(ref: Ref, request: Request, token: Reader,
                       occurred_by: Annotated[str | None, Query(max_length=64)] = None,
                       recorded_by: Annotated[str | None, Query(max_length=64)] = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = CUSTOMER_TIMELINE,
                       order: Literal["latest", "oldest"] = "latest") -> Response:
        key = _key(request, token, ref)
        if (occurred_by is None) == (recorded_by is None):
            raise ApiError(422, "give exactly one of occurred_by and recorded_by",
                           {"occurred_by": occurred_by, "recorded_by": recorded_by})
        name, text = ("occurred_by", occurred_by) if occurred_by is not None else ("recorded_by", recorded_by)
        try:
            at = catalogue.parse_instant(cast(str, text), name).astimezone(UTC)
        except InvalidFact as error:
            raise ApiError(422, str(error), {name: text}) from None
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first instant in UTC
            raise ApiError(422, f"{name}: {text!r} is out of range", {name: text}) from None
        axis: Literal["occurred", "recorded"] = "occurred" if name == "occurred_by" else "recorded"
        with desk.fresh() as journey:
            doc = replay_queries.customer_at(journey, key, at, axis, limit=limit, oldest=order == "oldest")
        if doc is None:
            raise ApiError(404, f"nobody known as {ref!r} ({key}) by {at.isoformat()}",
                           {"ref": ref, "key": key, name: text})
        return _doc(token, doc)

    @app.get("/api/customers/{ref}/can-contact", tags=["customers"],
             responses=_errors(401, 403, 404, 422),
             summary="may we contact this person now? (journey can-contact --json)")
    def can_contact(ref: Ref, request: Request, token: Reader,
                    channel: Literal[CHANNELS],  # type: ignore[valid-type]
                    purpose: Literal[PURPOSES],  # type: ignore[valid-type]
                    at: Annotated[str | None, Query(max_length=64)] = None,
                    campaign: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        _key(request, token, ref)
        with desk.fresh() as journey:
            try:
                answer = contact_decision(journey, ref, channel=channel, purpose=purpose, at=at,
                                          campaign=campaign)
            except UnknownCustomer as error:
                raise ApiError(404, str(error), {"ref": ref}) from None
            except ContactQuestionError as error:
                raise ApiError(422, str(error)) from None
        return _doc(token, answer.decision.to_json())

    # ---------------------------------------------------------------- lists

    @app.get("/api/cases", tags=["cases"], responses=_errors(401, 403, 404, 422),
             summary="cases across departments, a page at a time (journey cases --json)",
             description="The cases the filters match, overdue ones first, then open ones, then by "
                         "opening. `total` counts them all; `cases` holds rows `offset` to "
                         "`offset + limit - 1`. `counts` has the cases of each state (open, "
                         "resolved, overdue) among those `department`, `kind` and `customer` "
                         "match, whatever `status` asks for.")
    def cases(request: Request, token: ListReader, now: Now = None,
              overdue: Annotated[bool, Query(
                  description="only open complaints past their answer deadline")] = False,
              open: Annotated[bool, Query(description="only open cases")] = False,
              status: Annotated[Literal[case_queries.CASE_STATES] | None, Query(  # type: ignore[valid-type]
                  description="only cases in this state: open, resolved, or overdue (open "
                              "complaints past their answer deadline)")] = None,
              department: Annotated[str | None, Query(
                  max_length=100, description="only cases this department owns")] = None,
              kind: Annotated[Literal[catalogue.CASE_KINDS] | None, Query(  # type: ignore[valid-type]
                  description="only cases of this kind")] = None,
              customer: Annotated[str | None, Query(
                  max_length=200, description="only this customer's (+34..., @handle, e-mail, "
                                              "C-number...)")] = None,
              days: Annotated[int | None, Query(
                  ge=1, le=3650, description="days a complaint must be answered in (default: "
                                             "the ledger's)")] = None,
              limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Response:
        key = _key(request, token, customer, "customer") if customer is not None else None
        with desk.fresh() as journey:
            when, answer_days = _clock(now, days, desk.settings.complaint_days)
            customer_id = _resolve(desk, journey, customer, key) if customer and key else None
            doc = case_queries.list_cases(journey, now=when, days=answer_days, open_only=open,
                                          overdue_only=overdue, department=department, kind=kind,
                                          customer_id=customer_id, status=status,
                                          page=Page(offset, limit))
        return _doc(token, doc)

    @app.get("/api/cases/{case_ref}", tags=["cases"], responses=_errors(401, 403, 404, 409, 422),
             summary="one case by id or tracking key (journey case REF --json)")
    def case(case_ref: Annotated[str, PathParam(min_length=1, max_length=100)], request: Request,
             token: ListReader, now: Now = None,
             days: Annotated[int | None, Query(ge=1, le=3650)] = None) -> Response:
        with desk.fresh() as journey:
            when, answer_days = _clock(now, days, desk.settings.complaint_days)
            try:
                customer_id, case_id = case_queries.find_case(journey, case_ref)
            except case_queries.Unknown as error:
                raise ApiError(404, str(error), {"case": case_ref}) from None
            except case_queries.UsageError as error:
                raise ApiError(409, str(error), {"case": case_ref}) from None
            doc = case_queries.case_document(journey, customer_id, case_id, when, answer_days)
        return _doc(token, doc)

    @app.get("/api/promises", tags=["cases"], responses=_errors(401, 403, 404, 422),
             summary="promises departments made, a page at a time (journey promises --json)",
             description="The promises the filters match, overdue ones first, then open ones, then "
                         "by due date. `total` counts them all; `promises` holds rows `offset` "
                         "to `offset + limit - 1`. `counts` has the promises of each state "
                         "(open, kept, broken, overdue, unkept) among the customer's (or "
                         "everybody's), whatever `status` asks for.")
    def promises(request: Request, token: ListReader, now: Now = None,
                 overdue: Annotated[bool, Query(
                     description="only open promises past their due date")] = False,
                 open: Annotated[bool, Query(description="only open promises")] = False,
                 status: Annotated[Literal[case_queries.PROMISE_STATES] | None, Query(  # type: ignore[valid-type]
                     description="only promises in this state: open, kept, broken, overdue (open "
                                 "past the due date), or unkept (broken or overdue)")] = None,
                 customer: Annotated[str | None, Query(
                     max_length=200, description="only this customer's (+34..., @handle, "
                                                 "e-mail, C-number...)")] = None,
                 limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Response:
        key = _key(request, token, customer, "customer") if customer is not None else None
        with desk.fresh() as journey:
            when, _ = _clock(now, None, desk.settings.complaint_days, days_too=False)
            customer_id = _resolve(desk, journey, customer, key) if customer and key else None
            doc = case_queries.list_promises(journey, now=when, open_only=open,
                                             overdue_only=overdue, customer_id=customer_id,
                                             status=status, page=Page(offset, limit))
        return _doc(token, doc)

    @app.get("/api/inbox", tags=["service"], responses=_errors(401, 403, 422),
             summary="social mentions waiting for an answer, a page at a time "
                     "(journey inbox --json)",
             description="`waiting` holds the waiting mentions `offset` to `offset + limit - 1`, "
                         "oldest first; `total` counts every waiting one. The first-response "
                         "figures (`by_network`, `by_department`, `overall`) are over every "
                         "mention in scope, whatever the page.")
    def inbox(request: Request, token: ListReader,
              network: Annotated[str | None, Query(
                  max_length=100, description="only this network (twitter, instagram, ...)")] = None,
              all: Annotated[bool, Query(
                  description="every mention, also those not addressed to a brand account")] = False,
              now: Annotated[str | None, Query(
                  max_length=64, description="measure ages at this instant (ISO 8601 with "
                                             "offset); later facts are left out")] = None,
              limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Response:
        instant = None
        if now is not None:
            try:
                instant = catalogue.parse_instant(now, "now").isoformat()
            except InvalidFact as error:
                raise ApiError(422, str(error)) from None
        with desk.fresh() as journey:
            doc = service_queries.inbox(journey, now=instant, network=network, everything=all,
                                        page=Page(offset, limit))
        return _doc(token, doc)

    @app.get("/api/violations", tags=["contact policy"], responses=_errors(401, 403, 422),
             summary="past contacts that broke the contact policy, a page at a time "
                     "(journey violations --json)",
             description="Every past contact re-decided at its own instant by the policy version "
                         "in force then. `total` counts the violations the filters match; "
                         "`summary` counts them all by rule, department and channel and names "
                         "the customers with the most; `violations` holds rows `offset` to "
                         "`offset + limit - 1`, by department, campaign and time. The reasons "
                         "name the customer's phone or e-mail, as the contact decision does, so "
                         "the endpoint asks the permission to read customers.")
    def contact_violations(
            request: Request, token: Reader,
            since: Annotated[str | None, Query(
                max_length=64, description="only contacts from this date (YYYY-MM-DD) or ISO "
                                           "instant on")] = None,
            department: Annotated[str | None, Query(
                max_length=100, description="only contacts this department made")] = None,
            channel: Annotated[Literal[CHANNELS] | None, Query(  # type: ignore[valid-type]
                description="only contacts on this channel")] = None,
            rule: Annotated[Literal[REASON_CODES] | None, Query(  # type: ignore[valid-type]
                description="only contacts that broke this rule (a reason code)")] = None,
            limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Response:
        with desk.fresh() as journey:
            try:
                doc = violations(journey, since=since, department=department, channel=channel,
                                 rule=rule, page=Page(offset, limit))
            except ContactQuestionError as error:
                raise ApiError(422, str(error).replace("--since", "since"), {"since": since}) from None
        return _doc(token, doc)

    @app.get("/api/warranty/{query}", tags=["service"], responses=_errors(401, 403, 404, 422),
             summary="a serial number's purchase, warranty and claims, or a customer's "
                     "(journey warranty QUERY --json)")
    def warranty(query: Annotated[str, PathParam(min_length=1, max_length=200)], request: Request,
                 token: ListReader,
                 at: Annotated[date | None, Query(description="judge 'in warranty' on this day")] = None
                 ) -> Response:
        hidden = _hidden_kind(token, query)
        with desk.fresh() as journey:
            doc = service_queries.warranty(journey, query, at or date.today())
        if hidden is not None and (doc is None or doc["kind"] == "customer"):
            # Whether somebody has it or nobody does, the same 403 (as the customers
            # endpoints answer before looking): a 404 for nobody would confirm the others.
            raise _lookup_forbidden(request, token, hidden)
        if doc is None:
            raise ApiError(404, f"no product with serial {query!r} and nobody known as {query!r}",
                           {"query": query})
        return _doc(token, doc)

    # ---------------------------------------------------------------- facts

    @app.post("/api/facts", tags=["facts"], status_code=201,
              responses={**_errors(400, 401, 403, 413, 415),
                         422: {"model": ErrorBody,
                               "description": "some facts were rejected (the others were recorded): "
                                              "detail.rejected lists each one's index and reason"}},
              summary="record one fact or a list of facts (the JSON contract of journey append)",
              description="Every fact is judged alone: a rejected fact never takes the others "
                          "with it. 201 when none was rejected (duplicates, already recorded "
                          "facts, count as accepted); otherwise 422 listing each rejected fact's "
                          "0-based index and reason, with how many of the others were recorded. "
                          "A department's token records only facts of its own department (or "
                          "with none), and only the fact types its role may record "
                          "(docs/security.md, \"Who records what\").",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"oneOf": [{"type": "object"},
                                       {"type": "array", "items": {"type": "object"}}]}}}}})
    async def facts(request: Request, token: Writer) -> Response:
        if _access(request).get("via") == "cookie":
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise ApiError(415, "send the facts as Content-Type: application/json")
        from journey.api.service import RequestTooLarge, read_body, repeated_keys

        try:
            body = await read_body(request)
        except RequestTooLarge as error:
            raise ApiError(413, str(error), {"max_bytes": error.limit}) from None
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise ApiError(400, f"the body is not valid JSON ({error})") from None
        if isinstance(parsed, dict):
            items: list[Any] = [parsed]
        elif isinstance(parsed, list):
            items = parsed
        else:
            raise ApiError(422, f"expected a fact (a JSON object) or a list of facts, got "
                                f"{type(parsed).__name__}")
        if len(items) > MAX_FACTS:
            raise ApiError(413, f"{len(items)} facts in one request; at most {MAX_FACTS} "
                                "(use journey append for files)", {"max_facts": MAX_FACTS})
        refused = {**repeated_keys(body, items), **_foreign_facts(token, items)}
        outcome = await run_in_threadpool(_record, desk, items, refused)
        if not outcome.rejected:
            return JSONDocument({**outcome.counts(), "rejected": 0}, status_code=201)
        others = outcome.facts - len(outcome.rejected)
        listed = "; ".join(f"fact [{p.index}]: {p.reason}" for p in outcome.rejected[:10])
        more = f"; and {len(outcome.rejected) - 10} more" if len(outcome.rejected) > 10 else ""
        text = (f"{len(outcome.rejected)} of {outcome.facts} fact(s) rejected: {listed}{more}. "
                f"The other {others} were accepted: {outcome.recorded} recorded, "
                f"{outcome.duplicates} already recorded")
        return JSONDocument({"error": text, "detail": {
            **outcome.counts(), "rejected": [{"index": p.index, "reason": p.reason}
                                             for p in outcome.rejected]}}, status_code=422)

    # ---------------------------------------------------------------- tokens

    @app.get("/api/tokens", tags=["tokens"], responses=_errors(401, 403),
             summary="every token, revoked ones too (never a secret)")
    def list_tokens(request: Request, token: Admin) -> Response:
        return JSONDocument({"tokens": [t.to_json() for t in _tokens(request).tokens()]})

    @app.post("/api/tokens", tags=["tokens"], status_code=201, responses=_errors(400, 401, 403, 422),
              summary="create a token; the response is the only place its secret appears")
    def create_token(body: NewToken, request: Request, token: Admin) -> Response:
        try:
            created, secret = _tokens(request).create(body.name, body.role, body.department,
                                                      days=body.days)
        except TokenError as error:
            raise ApiError(422, str(error)) from None
        return JSONDocument({"token": created.to_json(), "secret": secret}, status_code=201)

    @app.post("/api/tokens/{name}/rotate", tags=["tokens"], responses=_errors(400, 401, 403, 404, 409, 422),
              summary="a new secret for a token (shown once); the old one is refused at once",
              description="The token keeps its name, role and department and lives `days` "
                          "(default JOURNEY_TOKEN_DAYS) from now; browsers signed in with the "
                          "old secret must sign in again. An expired token may be rotated; a "
                          "revoked one may not (409).")
    def rotate_token(name: Annotated[str, PathParam(max_length=100)], request: Request,
                     token: Admin, body: Rotation | None = None) -> Response:
        try:
            rotated, secret = _tokens(request).rotate(name, days=body.days if body else None)
        except TokenRevoked as error:
            raise ApiError(409, str(error), {"name": name}) from None
        except TokenError as error:
            raise ApiError(404, str(error), {"name": name}) from None
        return JSONDocument({"token": rotated.to_json(), "secret": secret})

    @app.delete("/api/tokens/{name}", tags=["tokens"], responses=_errors(401, 403, 404),
                summary="revoke a token at once")
    def revoke_token(name: Annotated[str, PathParam(max_length=100)], request: Request,
                     token: Admin) -> Response:
        try:
            revoked = _tokens(request).revoke(name)
        except TokenError as error:
            raise ApiError(404, str(error), {"name": name}) from None
        return JSONDocument({"token": revoked.to_json()})


# -------------------------------------------------------------------- auditors' and admins' desks


Auditor = Annotated[Token, Depends(require(Permission.AUDIT))]
Forgetter = Annotated[Token, Depends(require(Permission.FORGET))]
QuarantineReader = Annotated[Token, Depends(require(Permission.READ_QUARANTINE))]


class ForgetBody(BaseModel):
    confirm: str = Field(max_length=200,
                         description="the customer's reference (as in the path), customer number "
                                     "or name, typed again to confirm whom to forget")
    reason: str = Field(max_length=500,
                        description="why (recorded in clear with the forget: write no personal "
                                    "data here)")


def _desk_routes(app: FastAPI, desk: Desk) -> None:
    """The auditors' pages (a contact decision as of an instant and its replay, the hash
    chains, the subject-access export, forget) and the admins' (the quarantine)."""
    verification = audit.Verification()
    app.state.verification = verification

    @app.get("/api/customers/{ref}/contact-as-of", tags=["audit"],
             responses=_errors(401, 403, 404, 422),
             summary="may we have contacted this person at a past instant? the policy's answer "
                     "then, with its reasons",
             description="The customer's history folded from the event store as the ledger knew "
                         "it at `at` (`axis=recorded`: the facts recorded by then) or as it had "
                         "happened (`axis=occurred`: the facts that occurred by then, also those "
                         "recorded later), judged by the contact-policy version in force at `at`. "
                         "`recorded_decisions` lists the `contact.decided` facts of the same "
                         "channel and purpose in that history (what agents were told then).")
    def contact_as_of(ref: Ref, request: Request, token: Auditor,
                      channel: Literal[CHANNELS],  # type: ignore[valid-type]
                      purpose: Literal[PURPOSES],  # type: ignore[valid-type]
                      at: Annotated[str, Query(min_length=1, max_length=64,
                                               description="the instant (ISO 8601 with offset)")],
                      axis: Annotated[Literal["recorded", "occurred"], Query(
                          description="recorded: what the ledger knew at `at`; occurred: what had "
                                      "happened by `at`")] = "recorded",
                      campaign: Annotated[str | None, Query(max_length=200)] = None) -> Response:
        _key(request, token, ref)
        with desk.use() as journey:
            try:
                doc = audit.contact_decision_as_of(journey, ref, channel=channel, purpose=purpose,
                                                   at=at, axis=axis, campaign=campaign)
            except UnknownCustomer as error:
                raise ApiError(404, str(error), {"ref": ref, "at": at}) from None
            except ContactQuestionError as error:
                raise ApiError(422, str(error), {"at": at}) from None
        return _doc(token, doc)

    @app.get("/api/decisions/{event_id}/replay", tags=["audit"],
             responses=_errors(401, 403, 404, 422),
             summary="re-run a recorded contact decision over the history the agent saw "
                     "(journey replay decision EVENT_ID --json)",
             description="`event_id`: a `contact.decided` fact (journey can-contact --record) or "
                         "a contact that was made (call.outbound, email.sent, ...). `agree` says "
                         "whether the recomputed decision is the recorded one.")
    def replay_decision(event_id: Annotated[str, PathParam(min_length=1, max_length=100)],
                        token: Auditor) -> Response:
        from journey.policy import PolicyError
        from replay.decision import ReplayError

        with desk.use() as journey:
            pass  # the replay reads the event store only: no lock held while it scans the log
        try:
            replayed = replay_queries.replay_decision(journey, event_id)
        except replay_queries.UnknownEvent as error:
            raise ApiError(404, str(error), {"event_id": event_id}) from None
        except (ReplayError, PolicyError) as error:
            raise ApiError(422, str(error), {"event_id": event_id}) from None
        return _doc(token, replayed.replayed.to_json())

    @app.post("/api/audit/verify", tags=["audit"], responses=_errors(401, 403),
              summary="start recomputing every stored event's hash chain (journey verify); the "
                      "verification's state",
              description="The verification runs in the background (a large store takes "
                          "minutes): the answer is its state, `running` until it is `done` (or "
                          "`failed`). While one runs, another start returns it. Follow it with "
                          "GET /api/audit/verify; `report` is what `journey verify --json` prints "
                          "(`intact`, `first_broken`, ...).")
    def start_verify(token: Auditor) -> Response:
        with desk.use() as journey:
            pass  # the scan reads the event store only, in a thread of its own
        return JSONDocument(verification.start(journey, token.name))

    @app.get("/api/audit/verify", tags=["audit"], responses=_errors(401, 403),
             summary="the last verification's state: idle, running (with its progress), done "
                     "(with its report) or failed")
    def verify_state(token: Auditor) -> Response:
        return JSONDocument(verification.state())

    @app.get("/api/customers/{ref}/subject-access", tags=["audit"],
             responses={**_errors(401, 403, 404, 422),
                        200: {"description": "the export, as a JSON file to download",
                              "content": {"application/json": {}}}},
             summary="everything held about one person, as a file (journey subject-access REF "
                     "--out FILE; GDPR art. 15)",
             description="The export `journey subject-access` writes: `summary`, `customer_view`, "
                         "`raw_events` (from the event store, merged records included) and "
                         "`tables` (their rows of every projection table). Sent with "
                         "`Content-Disposition: attachment`. A forgotten person's export is a "
                         "tombstone.")
    def subject_access(ref: Ref, request: Request, token: Auditor) -> Response:
        key = _key(request, token, ref)
        with desk.fresh() as journey:
            try:
                export = audit.access_document(journey, ref)
            except InvalidFact as error:
                raise ApiError(422, f"reference {ref!r}: {error}") from None
        if export is None:
            raise ApiError(404, f"nobody known as {ref!r} ({key})", {"ref": ref, "key": key})
        export = policy.field_policy(token.role).redact(export)
        name = f"subject-access-{export['summary']['customer_id']}.json"
        return Response(audit.export_bytes(export), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/api/customers/{ref}/forget", tags=["audit"],
              responses=_errors(400, 401, 403, 404, 422),
              summary="forget a customer (GDPR art. 17; journey forget REF --reason R): their "
                      "keys are destroyed, their events stay unreadable",
              description="`confirm` must name the same person again: the reference as in the "
                          "path, their customer number or their name (case and spaces aside); "
                          "anything else is refused with 422 and nothing is forgotten. The answer "
                          "is what `journey forget --json` prints; the customer's page then "
                          "shows a tombstone. Forgetting somebody already forgotten (by ledger "
                          "id) redoes the cleaning and says `already_forgotten`.")
    def forget(ref: Ref, body: ForgetBody, request: Request, token: Forgetter) -> Response:
        _key(request, token, ref)
        warnings: list[str] = []
        with desk.use() as journey:
            try:
                erasure = erasure_queries.forget_confirmed(journey, ref, body.confirm, body.reason,
                                                           warn=warnings.append)
            except InvalidFact as error:
                raise ApiError(422, f"reference {ref!r}: {error}") from None
            except erasure_queries.NobodyToForget as error:
                raise ApiError(404, str(error), {"ref": ref}) from None
            except erasure_queries.WrongConfirmation as error:
                raise ApiError(422, str(error), {"ref": ref, "confirm": body.confirm}) from None
            except erasure_queries.ForgetRefused as error:
                raise ApiError(422, str(error), {"ref": ref}) from None
        return JSONDocument({**erasure.to_json(), "warnings": warnings})

    @app.get("/api/quarantine", tags=["server"], responses=_errors(401, 403, 422),
             summary="the stored facts the projection quarantined, a page at a time, in log "
                     "order (journey quarantine --json)",
             description="`total` counts every quarantined fact; `entries` holds `offset` to "
                         "`offset + limit - 1` (position, event id, stream, customer, type, the "
                         "reader's reason, when). `store_position` and `projection_position` "
                         "say where the ledger stands.")
    def quarantine_list(token: QuarantineReader, limit: Limit = DEFAULT_LIMIT,
                        offset: Offset = 0) -> Response:
        with desk.fresh() as journey:
            doc = quarantine_queries.quarantine_page(journey, Page(offset, limit))
        return _doc(token, doc)


def _resolve(desk: Desk, journey: Journey, ref: str, key: str) -> str:
    customer_id = desk.reads.resolve(journey, key)
    if customer_id is None:
        raise ApiError(404, f"nobody known as {ref!r} ({key})", {"ref": ref, "key": key})
    return customer_id


def _clock(now: str | None, days: int | None, configured: int, *, days_too: bool = True
           ) -> tuple[datetime | None, int]:
    """``now`` and ``days`` as the CLI's ``--now`` and ``--days`` read them; 422 if bad."""
    try:
        when = case_queries.parse_now(now)
        answer_days = case_queries.answer_days(days, configured) if days_too else 0
    except case_queries.UsageError as error:
        raise ApiError(422, str(error).replace("--now", "now").replace("--days", "days")) from None
    return when, answer_days


def _foreign_facts(token: Token, items: Sequence[Any]) -> dict[int, str]:
    """Facts the token may not record: those of another department (a department's token), and
    those of a type its role may not record (policy.RECORDERS). A fact that is not even an
    object with a type is left to the catalogue's validation, which says what is wrong."""
    refused = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        department = item.get("department")
        if token.role in policy.DEPARTMENTS and department is not None and department != token.role:
            refused[i] = (f"department: a {token.role} token records facts of {token.role} only, "
                          f"not {department!r}")
            continue
        type_name = item.get("type")
        data = item.get("data")
        kind = data.get("kind") if isinstance(data, dict) else None
        reason = policy.record_refusal(token.role, type_name, kind) if isinstance(type_name, str) else None
        if reason is not None:
            refused[i] = reason
    return refused


def _record(desk: Desk, items: list[Any], refused: dict[int, str]) -> Any:
    with desk.use() as journey:
        return record_facts(journey, items, refused)


__all__ = ["COOKIE", "HIDDEN", "create_app"]
