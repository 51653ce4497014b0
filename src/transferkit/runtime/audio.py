"""Audio inputs of an exported graph: decoded, mixed to mono and resampled as the bundle does,
then cut into overlapping windows of samples: ``windows`` float32 (B, K, window_samples) and
``window_mask`` float32 (B, K); the spectrogram, the network and the pooling over a clip's
windows are inside the graph.

``window_count``, ``cut_windows`` and ``batch_windows`` are the one implementation of the
cutting, which ``export`` states in ``export.json`` (``inputs``) and checks parity through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from transferkit.data.audio import UnreadableAudio, decode_audio
from transferkit.runtime.inputs import Feed, GraphInputs, decode_all, register_inputs


def window_count(n_samples: int, *, frame_hop: int, frames_per_window: int, window_hop: int) -> int:
    """How many windows a clip of ``n_samples`` has: its spectrogram has one frame every
    ``frame_hop`` samples (centred, one more at the end), a window covers ``frames_per_window``
    frames, and windows start ``window_hop`` frames apart; a short clip still has one."""
    frames = math.ceil(n_samples / frame_hop) + 1
    return max(1, (frames - frames_per_window) // window_hop + 1)


def cut_windows(
    wave: np.ndarray, count: int, *, window_samples: int, hop_samples: int, leading_zeros: int
) -> np.ndarray:
    """(count, window_samples) float32 windows of a mono clip: ``leading_zeros`` zeros, the clip,
    zeros to the end of the last window (the clip cut there if longer); window ``i`` starts at
    sample ``i * hop_samples``."""
    padded = np.zeros((count - 1) * hop_samples + window_samples, dtype=np.float32)
    body = wave[: len(padded) - leading_zeros]
    padded[leading_zeros : leading_zeros + len(body)] = body
    return np.stack([padded[s : s + window_samples] for s in np.arange(count) * hop_samples])


def batch_windows(clips: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's inputs for clips cut into windows: ``windows`` (B, K, samples), K the most
    windows of any clip, missing windows zeros; ``window_mask`` (B, K) 1.0 for real windows."""
    most = max(len(w) for w in clips)
    windows = np.zeros((len(clips), most, clips[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(clips), most), dtype=np.float32)
    for row, w in enumerate(clips):
        windows[row, : len(w)] = w
        mask[row, : len(w)] = 1.0
    return {"windows": windows, "window_mask": mask}


@register_inputs
class AudioInputs(GraphInputs):
    modality = "audio"
    accepts = "audio files, (name, bytes) pairs or bytes"

    def __init__(self, folder, graph_inputs):
        super().__init__(folder, graph_inputs)
        if self.graph_inputs != ("windows", "window_mask"):
            raise folder.refuse(
                "an audio graph takes 'windows' and 'window_mask'; this one takes "
                f"{list(graph_inputs)}"
            )
        self.sample_rate = self.number("sample_rate")
        self.count = {
            "frame_hop": self.number("frame_hop_samples"),
            "frames_per_window": self.number("frames_per_window"),
            "window_hop": self.number("window_hop_frames"),
        }
        self.cut = {
            "window_samples": self.number("window_samples"),
            "hop_samples": self.number("hop_samples"),
            "leading_zeros": self.number("leading_zeros"),
        }

    def windows(self, source) -> np.ndarray:
        """One clip (a file or its bytes) decoded and cut into windows."""
        wave = decode_audio(source, self.sample_rate)
        return cut_windows(wave, window_count(len(wave), **self.count), **self.cut)

    def feeds(self, items: Sequence) -> tuple[list[Feed], dict[int, str]]:
        good, bad = decode_all(items, self.windows, UnreadableAudio)
        if not good:
            return [], bad
        return [([i for i, _ in good], batch_windows([w for _, w in good]))], bad
