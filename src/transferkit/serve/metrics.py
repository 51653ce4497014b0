"""Prometheus metrics of one server: requests by route and status, their latency, the batch
sizes the models see, and how many backbones are in memory."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """The server's metrics, in a registry of its own (two apps in one process never mix)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "transferkit_http_requests",
            "HTTP requests answered, by method, route template and status code",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "transferkit_http_request_seconds",
            "Time from a request's arrival to its answer, by route template",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "transferkit_batch_size",
            "Inputs per batch, gathered from concurrent requests, by model",
            ("model",),
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "transferkit_batch_seconds",
            "Time of one batch through the model, by model",
            ("model",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "transferkit_predictions",
            "Inputs predicted, by model",
            ("model",),
            registry=self.registry,
        )
        self.backbones = Gauge(
            "transferkit_backbones_loaded",
            "Distinct backbone weights held in memory (models with the same frozen backbone, "
            "or adapter bundles on one base, share one)",
            registry=self.registry,
        )


class MetricsMiddleware:
    """ASGI middleware counting every HTTP answer, refusals by the other middlewares included."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # the template (/v1/models/{name}/predict), never the raw path: bounded label values
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
