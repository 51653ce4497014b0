"""Audio backbones: pretrained encoders shipped inside packages, and MFCC statistics.

Every audio backbone maps a clip to the mean and standard deviation of its per-window
embeddings (``AudioPreprocess``: the encoder's sample rate and window). Measured on our
benchmarks (BENCHMARKS.md, ``audio``):

- ``aisfx``: a CNN trained on sound-effect libraries (ISMIR 2022); 512-d per 2.32 s window.
  The default for sounds.
- ``speech_embedding``: Google's speech-embedding model (the front end of openWakeWord), trained
  for keyword spotting; 96-d per 80 ms step over 0.775 s windows. For spoken words.
- ``speaker_ge2e``: the GE2E speaker encoder of Resemblyzer; 256-d per 1.6 s. For voices.
- ``mfcc_stats``: 20 MFCCs and their deltas, nothing learned — the no-transfer reference that
  ``--baseline`` compares with.

The code of each network and its signal processing lives in ``audio_nets.py`` and
``audio_features.py`` (re-implemented in torch/numpy, checked against the packages), so none of
the packages' own modules — which import librosa, webrtcvad or old numpy — is ever imported.
``aisfx`` and ``speaker_ge2e`` are torch networks and can be fine-tuned (``--strategy finetune``);
``speech_embedding`` is an ONNX graph and only embeds.
"""

from __future__ import annotations

from transferkit.backbones.audio_preprocess import AudioPreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec


def _loader(make):
    def load(spec: BackboneSpec, weights, preprocess):
        # torch is imported when an audio backbone is built, not when it is registered
        from transferkit.backbones.audio_backbone import AudioBackbone

        path = None if weights is None else weights.path
        return AudioBackbone(spec, make(path), preprocess, weights)

    return load


def _aisfx(path):
    from transferkit.backbones.audio_encoders import AisfxEncoder

    return AisfxEncoder(path)


def _speaker(path):
    from transferkit.backbones.audio_encoders import SpeakerEncoder

    return SpeakerEncoder(path)


def _speech(path):
    from pathlib import Path

    from transferkit.backbones.audio_encoders import SpeechEmbeddingEncoder

    # the embedding model is the verified weight file; the mel front end lies beside it and
    # is verified by the encoder against its own pinned sha256
    return SpeechEmbeddingEncoder(Path(path).parent)


def _mfcc(_path):
    from transferkit.backbones.audio_encoders import MfccStatsEncoder

    return MfccStatsEncoder(sample_rate=44100)


register(
    BackboneSpec(
        name="aisfx",
        source="package",
        embedding_dim=1024,
        preprocess=AudioPreprocess(sample_rate=44100, window_seconds=2.32),
        licence="MIT",
        description="sound-effects CNN (aisfx, ISMIR 2022): mean+std of 512-d per 2.32 s",
        weights=WeightsSpec(
            filename="checkpoint.pth",
            sha256="499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5",
            packages=(("aisfx", "aisfx/models/checkpoint.pth"),),
        ),
        modality="audio",
        loader=_loader(_aisfx),
    )
)

register(
    BackboneSpec(
        name="speech_embedding",
        source="package",
        embedding_dim=192,
        preprocess=AudioPreprocess(sample_rate=16000, window_seconds=0.775),
        licence="Apache-2.0",
        description="Google speech embedding (openWakeWord 0.4.0 ONNX): mean+std of 96-d / 80 ms",
        weights=WeightsSpec(
            filename="embedding_model.onnx",
            sha256="ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
            packages=(("openwakeword", "openwakeword/resources/models/embedding_model.onnx"),),
        ),
        modality="audio",
        loader=_loader(_speech),
        trainable=False,  # an ONNX graph: it embeds, it cannot train
    )
)

register(
    BackboneSpec(
        name="speaker_ge2e",
        source="package",
        embedding_dim=512,
        preprocess=AudioPreprocess(sample_rate=16000, window_seconds=1.6),
        licence="Apache-2.0",
        description="GE2E speaker encoder (Resemblyzer): mean+std of 256-d per 1.6 s",
        weights=WeightsSpec(
            filename="pretrained.pt",
            sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
            packages=(("resemblyzer", "resemblyzer/pretrained.pt"),),
        ),
        modality="audio",
        loader=_loader(_speaker),
    )
)

register(
    BackboneSpec(
        name="mfcc_stats",
        source="classical",
        embedding_dim=80,
        preprocess=AudioPreprocess(sample_rate=44100, window_seconds=0.0464),
        licence="—",
        description="MFCC statistics (20 MFCCs + deltas, mean+std): no transfer, the reference",
        weights=WeightsSpec(filename="none"),
        modality="audio",
        loader=_loader(_mfcc),
        trainable=False,  # nothing learned
        needs_weights=False,
        standardize_features=True,
    )
)
