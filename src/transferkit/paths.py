"""Where transferkit keeps things outside the repository: embedding caches, exported models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of the on-disk caches: ``$TRANSFERKIT_CACHE_DIR`` or ``~/.cache/transferkit``."""
    env = os.environ.get("TRANSFERKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "transferkit"
