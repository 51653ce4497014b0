"""Hugging Face audio encoders by hub name: ``hf:facebook/wav2vec2-base``, ``hf:MIT/ast-...``,
HuBERT, WavLM, Whisper's encoder...

An ``hf:`` name is audio when the model's ``config.json`` (in the local Hugging Face cache) has
an audio ``model_type``, or — before anything is downloaded — when the name says so (wav2vec2,
hubert, wavlm, whisper, ast...). Each model brings its own feature extractor
(``preprocessor_config.json``: sample rate, normalisation, filterbanks). A clip is cut into
``WINDOW_SECONDS`` pieces (attention cost grows with length, and AST reads ~10 s at most); the
encoder's last hidden states over all pieces are pooled (mean + std) like every audio backbone.
Weights are read from ``model.safetensors`` only: never a pickle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from transferkit.backbones.audio_preprocess import AudioPreprocess
from transferkit.backbones.registry import HF_PREFIX, BackboneSpec
from transferkit.weights.resolver import WeightsSpec

WINDOW_SECONDS = 10.0
AUDIO_MODEL_TYPES = frozenset(
    {
        "wav2vec2",
        "wav2vec2-conformer",
        "hubert",
        "wavlm",
        "data2vec-audio",
        "unispeech",
        "unispeech-sat",
        "sew",
        "sew-d",
        "audio-spectrogram-transformer",
        "whisper",
        "clap",
    }
)
_AUDIO_NAME = re.compile(r"wav2vec|hubert|wavlm|whisper|(^|[/-])ast[-_]|audio|unispeech|sew", re.I)


def is_audio_hub_model(repo: str) -> bool:
    """Whether ``repo`` is an audio encoder: its cached config says so, or (not cached) its
    name does."""
    config = _cached_config(repo)
    if config is not None:
        return str(config.get("model_type", "")).lower() in AUDIO_MODEL_TYPES
    return bool(_AUDIO_NAME.search(repo))


def _cached_config(repo: str) -> dict | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        path = try_to_load_from_cache(repo, "config.json")
    except Exception:  # noqa: BLE001 - a malformed repo id: decide by name
        return None
    if not isinstance(path, str):
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def hub_audio_spec(name: str, repo: str) -> BackboneSpec:
    return BackboneSpec(
        name=f"{HF_PREFIX}{repo}",
        source="huggingface",
        modality="audio",
        embedding_dim=None,
        preprocess=AudioPreprocess(sample_rate=16000, window_seconds=WINDOW_SECONDS),
        licence="see the model card on the Hub",
        description=f"{repo} (audio) from the Hugging Face Hub",
        weights=WeightsSpec(
            filename="model.safetensors", hf_hub_id=repo, hf_filename="model.safetensors"
        ),
        loader=_loader,
        probe=_probe,
    )


def _probe(spec, weights) -> tuple[AudioPreprocess, int]:
    """(preprocessing, embedding width) from the model's files, without torch."""
    folder = Path(weights.path).parent
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    extractor = folder / "preprocessor_config.json"
    if not extractor.is_file():
        raise RuntimeError(
            f"{spec.name}: no preprocessor_config.json next to the weights; an audio model "
            "needs its feature extractor (sample rate, normalisation)"
        )
    rate = json.loads(extractor.read_text(encoding="utf-8")).get("sampling_rate", 16000)
    hidden = config.get("hidden_size") or config.get("d_model")
    if not hidden:
        raise RuntimeError(f"{spec.name}: config.json gives no hidden_size")
    return AudioPreprocess(sample_rate=int(rate), window_seconds=WINDOW_SECONDS), 2 * int(hidden)


class HubAudioEncoder:
    """A transformers audio model and its feature extractor: ``frames(wave)`` -> the last
    hidden states (n, hidden) of every ``WINDOW_SECONDS`` piece of the clip.

    For fine-tuning, a window is one piece's model input as the feature extractor makes it
    (normalised samples for wav2vec2-style models, filterbanks for AST and Whisper); the pieces
    of a clip differ in length, so they run through the model one at a time."""

    fixed_window_shape = False

    def __init__(self, folder: str | Path):
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        folder = Path(folder)
        config = AutoConfig.from_pretrained(folder)
        self.extractor = AutoFeatureExtractor.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, use_safetensors=True)
        # sequence-to-sequence audio models (Whisper): the encoder is the part that embeds
        encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        self.net = (model.get_encoder() if encoder_decoder else model).eval()
        self.input_name = self.extractor.model_input_names[0]  # input_values / input_features
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", 16000))
        self.window_seconds = WINDOW_SECONDS
        self.frame_dim = int(getattr(config, "hidden_size", None) or config.d_model)

    def window_inputs(self, wave: np.ndarray) -> list[np.ndarray]:
        step = int(self.window_seconds * self.sample_rate)
        pieces = [wave[i : i + step] for i in range(0, max(len(wave), 1), step)] or [wave]
        return [
            np.asarray(
                self.extractor(piece, sampling_rate=self.sample_rate, return_tensors="np")[
                    self.input_name
                ][0],
                dtype=np.float32,
            )
            for piece in pieces
        ]

    def net_frames(self, inputs):
        """(1, *window) model input -> (time, hidden) last hidden states."""
        return self.net(**{self.input_name: inputs}).last_hidden_state[0]

    def frames(self, wave: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = [
                self.net_frames(torch.from_numpy(w)[None]).float().numpy()
                for w in self.window_inputs(wave)
            ]
        return np.concatenate(out, axis=0)

    def layer_groups(self) -> list[list[str]]:
        """Everything before the transformer layers (the convolutional or patch front end),
        one group per layer, and what follows the last layer (final norm) with it."""
        from transferkit.backbones.text_models import transformer_layer_list

        prefix, n_layers = transformer_layer_list(self.net)
        groups: list[list[str]] = [[] for _ in range(n_layers + 1)]
        seen_layers = False
        for name, _ in self.net.named_parameters():
            if name.startswith(prefix + "."):
                groups[int(name[len(prefix) + 1 :].split(".")[0]) + 1].append(name)
                seen_layers = True
            else:
                groups[-1 if seen_layers else 0].append(name)
        return [g for g in groups if g]


def _loader(spec, weights, preprocess):
    from transferkit.backbones.audio_backbone import AudioBackbone

    if weights is None:
        raise RuntimeError(
            f"{spec.name}: a Hugging Face audio model is built from its downloaded config; "
            "random initialisation without it (--strategy scratch) is not supported"
        )
    return AudioBackbone(spec, HubAudioEncoder(Path(weights.path).parent), preprocess, weights)
