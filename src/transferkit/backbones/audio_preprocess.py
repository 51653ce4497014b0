"""Audio preprocessing owned by an audio backbone: the sample rate it hears and its window.

Clips are mixed down to mono and resampled (soxr, high quality) to ``sample_rate``; a clip
longer than ``window_seconds`` is split into the encoder's windows, whose embeddings are pooled
into one vector per clip as their mean and standard deviation (``pooling``), or as their mean
alone where the encoder's own tools average its windows (BirdNET). Recorded in the bundle and in
the embedding-cache key, never chosen by the user.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from transferkit.backbones.config_io import config_fingerprint, config_from_dict

POOLINGS = ("mean+std", "mean")


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
        return config_from_dict(cls, data)

    def fingerprint(self) -> str:
        return config_fingerprint(self)
