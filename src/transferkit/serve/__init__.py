"""``transferkit serve``: models over HTTP (FastAPI + uvicorn), micro-batched, with limits,
a token when reachable from other machines, and Prometheus metrics.

``models.py`` loads what is served, ``batching.py`` groups concurrent requests, ``inputs.py``
reads a request's inputs, ``limits.py`` and ``auth.py`` guard the door, ``metrics.py`` counts,
``app.py`` puts them together and ``cli.py`` starts the server. Nothing here is imported by the
library; FastAPI is imported only when a server is built.
"""
