"""The wallet app's HTTP server: server-rendered pages over the Lens, and the endpoints
that turn a form into what the user's wallet signs.

    GET  /  /spv/{id}  /invest  /lend  /trade  /oracle      pages (read-only without a wallet)
    POST /api/plan/{action}            a form -> the transactions to sign, or the refusal
    POST /api/kyc/typed-data           a KYC provider's attestation as EIP-712 typed data
    POST /api/kyc/attestation          ... and its signature -> the file the investor submits
    GET  /api/oracle/attestations/{i}  an oracle log entry with its inclusion proof at the
                                       on-chain checkpoint's size (the page checks it)

The connected wallet's address travels in the `account` cookie that wallet.js sets; the
server never holds a key and never sends a transaction. Every response says how many
JSON-RPC calls it made (`X-RPC-Calls`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import actions, rpc, views
from gpushares.client import kyc
from gpushares.client.chain import ChainError, Refused
from gpushares.client.context import Client
from gpushares.client.units import BadInput, address
from jurisdictions import eligibility

HERE = Path(__file__).resolve().parent


class Settings(BaseModel):
    """Where the app reads from."""

    model_config = ConfigDict(frozen=True)

    rpc_url: str = Field(description="the chain's JSON-RPC URL (the wallet's network too)")
    deployments: Path = Field(description="the deployments file `ape run deploy` wrote")
    oracle_url: str | None = Field(default=None, description="an oracle node's API, for the "
                                   "attestation log and its proofs")
    chain_name: str = "GPU Shares local (anvil)"


class TypedDataAsk(BaseModel):
    """A KYC provider asks for the attestation it is about to sign for an investor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(description="the KYC provider's wallet (it signs)")
    investor: str
    jurisdiction: str = Field(description="country (US, DE, 840) or region (UA-30)")
    accredited: bool = False
    valid_days: int = Field(default=365, ge=1, le=3650)


class SignedAsk(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attestation: eligibility.Eligibility
    signature: str
    signer: str


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(settings: Settings, *, client: Client | None = None) -> FastAPI:
    """The app over `settings` (or over an already connected `client`)."""
    if client is None:
        client = Client.load(rpc.connect(settings.rpc_url), settings.deployments)
    app = FastAPI(title="GPU Shares", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(views.TEMPLATE_GLOBALS)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    reader = views.Reader(client, settings)
    app.router.on_shutdown.append(reader.http.close)

    @app.middleware("http")
    async def count_rpc(request: Request,
                        call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        tally, token = rpc.start_tally()
        try:
            response = await call_next(request)
        finally:
            rpc.stop_tally(token)
        response.headers["X-RPC-Calls"] = str(tally.calls)
        response.headers["X-RPC-Methods"] = ",".join(tally.methods)
        return response

    def frame(request: Request, name: str) -> dict[str, Any]:
        """What every page's frame (base.html) shows."""
        return {"request": request, "account": views.account_of(request.cookies.get("account")),
                "page": name, "chain_id": client.chain.chain_id, "rpc_url": settings.rpc_url,
                "chain_name": settings.chain_name}

    def problem(request: Request, status: int, message: str) -> Response:
        """JSON for the API; for a page, the page's frame with the message in words."""
        if request.url.path.startswith("/api/"):
            return _problem(status, message)
        title = {404: "Not found", 422: "Cannot show that", 502: "The chain did not answer"}
        return templates.TemplateResponse(request, "error.html", {
            **frame(request, "error"), "title": title.get(status, "Error"), "message": message},
            status_code=status)

    @app.exception_handler(BadInput)
    def bad_input(request: Request, exc: BadInput) -> Response:
        return problem(request, 422, str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                 for e in exc.errors()]
        return problem(request, 422, "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "not found"
        if exc.status_code == 404:
            message = (f"There is no page at {request.url.path}: the pages are the portfolio "
                       "(/), /spv/<id>, /invest, /lend, /trade and /oracle.")
        return problem(request, exc.status_code, message)

    @app.exception_handler(ChainError)
    def chain_error(request: Request, exc: ChainError) -> Response:
        return problem(request, 502, f"the chain could not answer: {exc}")

    def page(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
        return templates.TemplateResponse(request, f"{name}.html",
                                          {**frame(request, name), **context})

    def who(request: Request) -> str | None:
        return views.account_of(request.cookies.get("account"))

    @app.get("/", response_class=HTMLResponse)
    def portfolio(request: Request) -> HTMLResponse:
        return page(request, "portfolio", reader.portfolio(who(request)))

    @app.get("/spv/{spv_id}", response_class=HTMLResponse)
    def spv_page(request: Request, spv_id: int) -> HTMLResponse:
        return page(request, "spv", reader.spv(spv_id))

    @app.get("/invest", response_class=HTMLResponse)
    def invest(request: Request) -> HTMLResponse:
        return page(request, "invest", reader.invest(who(request)))

    @app.get("/lend", response_class=HTMLResponse)
    def lend(request: Request) -> HTMLResponse:
        return page(request, "lend", reader.lend(who(request)))

    @app.get("/trade", response_class=HTMLResponse)
    def trade(request: Request) -> HTMLResponse:
        return page(request, "trade", reader.trade(who(request)))

    @app.get("/oracle", response_class=HTMLResponse)
    def oracle(request: Request) -> HTMLResponse:
        return page(request, "oracle", reader.oracle())

    @app.post("/api/plan/{name}")
    def plan(name: str, body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        action = actions.ACTIONS.get(name)
        if action is None:
            return _problem(404, f"no action {name!r}; the actions are: "
                                 f"{', '.join(sorted(actions.ACTIONS))}")
        try:
            ask = action.ask.model_validate(body)
        except ValidationError as exc:
            parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                     for e in exc.errors()]
            return _problem(422, "; ".join(parts))
        return JSONResponse(actions.run(client, name, ask).model_dump())

    @app.post("/api/kyc/typed-data")
    def typed_data(ask: TypedDataAsk) -> JSONResponse:
        rule, region = kyc.residence_and_region(ask.jurisdiction)
        try:
            attestation = kyc.attestation_for(
                client, ask.account, ask.investor, rule, accredited=ask.accredited,
                valid_days=ask.valid_days, region=region)
        except Refused as exc:
            return JSONResponse({"refusal": exc.reason})
        typed = eligibility.typed_data(attestation, client.chain.chain_id,
                                       client.deployed.compliance_registry)
        return JSONResponse({"attestation": json.loads(attestation.model_dump_json()),
                             "typed_data": typed})

    @app.post("/api/kyc/attestation")
    def signed_attestation(ask: SignedAsk) -> JSONResponse:
        try:
            signed = eligibility.SignedEligibility(
                attestation=ask.attestation, signature=ask.signature,
                signer=address(ask.signer, "signer"), chain_id=client.chain.chain_id,
                registry=client.deployed.compliance_registry)
        except ValidationError as exc:
            return _problem(422, str(exc.errors()[0]["msg"]))
        if eligibility.recover_signer(signed) != signed.signer:
            return _problem(422, "the signature does not match the attestation: sign the "
                                 "typed data exactly as the page gave it")
        return JSONResponse(json.loads(signed.model_dump_json()))

    @app.get("/api/oracle/attestations/{index}")
    def attestation(index: int, size: int | None = None) -> JSONResponse:
        if settings.oracle_url is None:
            return _problem(503, "this app was started without an oracle node "
                                 "(--oracle URL): the log and its proofs are not reachable")
        params = {} if size is None else {"size": size}
        try:
            answer = reader.http.get(f"{settings.oracle_url}/v1/attestations/{index}",
                                     params=params)
            body = answer.json()
        except httpx.HTTPError as exc:
            return _problem(502, f"the oracle node {settings.oracle_url} did not answer: {exc}")
        except ValueError:
            return _problem(502, f"the oracle node {settings.oracle_url} answered HTTP "
                                 f"{answer.status_code} with something that is not JSON")
        return JSONResponse(body, status_code=answer.status_code)

    return app
