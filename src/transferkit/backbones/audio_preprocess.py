"""Audio preprocessing owned by an audio backbone: the sample rate it hears and its window.

Clips are mixed down to mono and resampled (soxr, high quality) to ``sample_rate``; a clip
longer than ``window_seconds`` is split into the encoder's windows, whose embeddings are pooled
into one vector per clip as their mean and standard deviation (``pooling``). Recorded in the
bundle and in the embedding-cache key, never chosen by the user.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

logger = logging.getLogger("transferkit")

POOLINGS = ("mean+std",)


@dataclass(frozen=True)
class AudioPreprocess:
    sample_rate: int
    window_seconds: float
    pooling: str = "mean+std"

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise ValueError(
                f"AudioPreprocess.sample_rate must be an int; got {self.sample_rate!r}"
            )
        if self.sample_rate < 1000:
            raise ValueError(f"AudioPreprocess.sample_rate must be >= 1000; got {self.sample_rate}")
        if not self.window_seconds > 0:
            raise ValueError(
                f"AudioPreprocess.window_seconds must be > 0; got {self.window_seconds!r}"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"AudioPreprocess.pooling must be one of {list(POOLINGS)}; got {self.pooling!r}"
            )

    @property
    def modality(self) -> str:
        return "audio"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "audio", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AudioPreprocess:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"kind"})
        if unknown:
            logger.warning("AudioPreprocess: ignoring unknown keys %s", unknown)
        return cls(**{k: v for k, v in data.items() if k in known})

    def fingerprint(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
