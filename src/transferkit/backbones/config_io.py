"""What every preprocessing config (image, text, audio) shares: its JSON form and its identity."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields
from typing import Any

logger = logging.getLogger("transferkit")


def config_from_dict(cls, data: dict[str, Any]):
    """``cls(**data)`` for a preprocessing dataclass, ignoring (with a warning) unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known - {"kind"})
    if unknown:
        logger.warning(
            "%s: ignoring unknown keys %s (written by a newer transferkit?)", cls.__name__, unknown
        )
    return cls(**{k: v for k, v in data.items() if k in known})


def config_fingerprint(config) -> str:
    """sha256 of a preprocessing config's canonical JSON (``to_dict``): its cache identity."""
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
