"""The FastAPI application: models, predictions, health and metrics, behind the limits and (when
a token is set) a bearer token.

``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/models/{name}/predict`` (multipart
files, or JSON texts for a model of texts; several inputs are one batch), ``GET /healthz`` (no
token: for probes), ``GET /metrics`` (Prometheus). Every error is JSON (``errors.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from transferkit import __version__
from transferkit.serve.auth import TokenCheck
from transferkit.serve.batching import JobRefused, MicroBatcher
from transferkit.serve.errors import ApiError, http_error, validation_error
from transferkit.serve.inputs import JSON, MULTIPART, input_spec, read_inputs
from transferkit.serve.limits import Limits, RequestLimits
from transferkit.serve.metrics import MetricsMiddleware, ServerMetrics
from transferkit.serve.models import BatchResult, ServedModel, backbone_groups
from transferkit.serve.schemas import (
    ErrorBody,
    Health,
    ModelInfo,
    ModelList,
    PredictResponse,
    files_schema,
    texts_schema,
)

_ERRORS = {
    400: "an upload cannot be read (e.g. a .png that holds text), or a malformed multipart body",
    404: "no model of that name is served",
    408: "the request body did not arrive in time",
    413: "the body, or the number of inputs, is over the server's limit",
    415: "wrong Content-Type for this model (multipart files, or JSON texts)",
    422: "an empty batch, an empty text, or JSON of the wrong shape",
    503: "the server could not answer within its time limit",
}


# declares the bearer scheme in the OpenAPI schema; the check itself is TokenCheck's
_BEARER = HTTPBearer(auto_error=False)


async def _authorised(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    given = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    request.app.state.token_check(given)


def create_app(
    models: dict[str, ServedModel],
    limits: Limits | None = None,
    token: str | None = None,
    *,
    in_flight: int = 1,
) -> FastAPI:
    """The server's application for ``models`` (loaded by ``load_models``); ``in_flight``
    batches of a model run at once (``transferkit serve``: one a core, with one-thread models)."""
    limits = limits or Limits()
    metrics = ServerMetrics()
    executor = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="transferkit-inference")
    batchers: dict[str, MicroBatcher] = {}
    shares = backbone_groups(models.values())
    metrics.backbones.set(len({id(m.weights_in_memory()) for m in models.values()}))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        wait_s = limits.batch_wait_ms / 1000
        for name, model in models.items():
            batchers[name] = MicroBatcher(
                model,
                executor,
                metrics,
                batch_size=limits.batch_size,
                wait_s=wait_s,
                in_flight=in_flight,
            )
        tasks = [asyncio.create_task(b.run(), name=f"batcher-{n}") for n, b in batchers.items()]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="transferkit",
        version=__version__,
        description="Predictions from transferkit models (bundles and exported models).",
        lifespan=lifespan,
    )
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(RequestLimits, limits=limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts refusals too

    check = TokenCheck(token) if token else None
    app.state.token_check = check
    guarded = [Depends(_authorised)] if check else []
    bad_token = {"model": ErrorBody, "description": "missing or wrong bearer token"}
    refused = {401: bad_token} if check else {}
    errors = {status: {"model": ErrorBody, "description": why} for status, why in _ERRORS.items()}
    errors.update(refused)

    def served(name: str) -> ServedModel:
        if name not in models:
            raise ApiError(
                404,
                "model_not_found",
                f"no model named {name!r} is served here; the models are: "
                f"{', '.join(sorted(models))} (GET /v1/models)",
            )
        return models[name]

    def info(model: ServedModel) -> ModelInfo:
        return ModelInfo(
            **model.describe(), input=input_spec(model), shares_backbone_with=shares[model.name]
        )

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Whether the server is up, and the models it serves (no token needed)."""
        return Health(status="ok", models=sorted(models))

    @app.get(
        "/metrics",
        dependencies=guarded,
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}, **refused},
        tags=["health"],
    )
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests by status, latency, batch sizes, backbones in memory."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/models",
        response_model=ModelList,
        dependencies=guarded,
        responses=refused,
        tags=["models"],
    )
    async def list_models() -> ModelList:
        """Every served model: what it classifies, its labels, and how to send it inputs."""
        return ModelList(models=[info(models[name]) for name in sorted(models)])

    @app.get(
        "/v1/models/{name}",
        response_model=ModelInfo,
        dependencies=guarded,
        responses={404: errors[404], **refused},
        tags=["models"],
    )
    async def get_model(name: str) -> ModelInfo:
        """One served model."""
        return info(served(name))

    max_inputs = limits.max_inputs
    body = {
        "required": True,
        "description": "image and audio models: multipart/form-data with each file as a part "
        "named 'files'; text models: JSON {\"texts\": [...]}. Several inputs are one batch.",
        "content": {
            MULTIPART: {"schema": files_schema(max_inputs)},
            JSON: {"schema": texts_schema(max_inputs)},
        },
    }

    @app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        dependencies=guarded,
        responses=errors,
        openapi_extra={"requestBody": body},
        tags=["models"],
    )
    async def predict(
        name: str,
        request: Request,
        top: int = Query(3, ge=1, le=1000, description="how many class scores to return"),
    ) -> JSONResponse:
        """Predict the label of every input sent (one batch, answered in the order sent)."""
        model = served(name)
        inputs = await read_inputs(request, model, limits)
        left = request.state.deadline - time.monotonic()
        try:
            result = await asyncio.wait_for(batchers[name].submit(inputs), max(left, 0.001))
        except asyncio.TimeoutError:
            raise ApiError(
                503,
                "timeout",
                f"no answer within the server's limit of {limits.timeout_s:g} s (it is busy); "
                "retry later or send fewer inputs per request",
                headers={"Retry-After": "1"},
            ) from None
        except JobRefused as exc:
            if exc.unreadable:
                raise _unreadable(model, exc.unreadable, len(inputs)) from None
            raise ApiError(400, "bad_input", str(exc)) from None
        return _answer(model, result, top)

    return app


def _answer(model: ServedModel, result: BatchResult, top: int) -> JSONResponse:
    """The answer, shaped as ``PredictResponse`` (the schema says so; schemathesis checks it)
    and sent as it is: validating what this code builds costs every request its time."""
    bad = [
        {"input": named["input"], "reason": reason}
        for named, reason in zip(result.named, result.reasons)
        if reason is not None
    ]
    if bad:
        raise _unreadable(model, bad, len(result.reasons))
    labels = model.labels
    predictions = []
    for row, named in zip(result.proba, result.named):
        order = np.argsort(-row)[:top]
        predictions.append(
            {
                "input": str(named["input"]),
                "label": labels[int(order[0])],
                "confidence": round(float(row[order[0]]), 6),
                "scores": {labels[int(i)]: round(float(row[i]), 6) for i in order},
            }
        )
    return JSONResponse({"model": model.name, "predictions": predictions})


def _unreadable(model: ServedModel, bad: list[dict[str, str]], total: int) -> ApiError:
    listed = "; ".join(f"{b['input']}: {b['reason']}" for b in bad[:5])
    return ApiError(
        400,
        "unreadable_input",
        f"{len(bad)} of the {total} inputs cannot be read as {model.modality.noun}s "
        f"({listed}); nothing was predicted. Send readable files.",
        inputs=bad,
    )
