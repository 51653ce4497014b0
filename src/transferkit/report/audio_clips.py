"""Audio previews for the report: a clip -> a small ``data:audio/wav`` URI for an <audio> player.

The mistakes gallery lets a person *hear* what the model got wrong. To keep the one-file report
small, a preview is the first ``MAX_SECONDS`` of the clip, mono, at ``RATE`` Hz, 16-bit WAV
(~16 kB per second before base64). Nothing here may raise: an unreadable clip has no player.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

MAX_SECONDS = 4.0
RATE = 16000
MAX_PLAYERS = 12  # players per report: a cap on its size


def try_audio_data_uri(path: str | Path) -> str | None:
    """``data:audio/wav;base64,...`` of the clip's first seconds, or None if unreadable."""
    try:
        import soundfile as sf

        from transferkit.data.audio import decode_audio

        wave = decode_audio(path, RATE)[: int(MAX_SECONDS * RATE)]
        peak = float(np.abs(wave).max()) or 1.0
        pcm = (np.clip(wave / max(peak, 1.0), -1, 1) * 32767).astype(np.int16)
        buffer = io.BytesIO()
        sf.write(buffer, pcm, RATE, format="WAV", subtype="PCM_16")
        return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    except Exception:  # noqa: BLE001 - a preview must never cost the user their report
        return None
