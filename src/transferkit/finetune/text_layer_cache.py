"""Run a text encoder's frozen lower layers once per text; train only through the top layers.

When only the top ``k`` transformer layers of a sentence encoder train, the layers below them
compute the same thing at every step. :class:`FrozenLayerCache` computes each training text's
hidden states at the first trainable layer once (in eval mode), and a training step then runs
only the trainable layers on them. Contrastive's default freezes only the token embeddings (half
of MiniLM's weights), so the cache holds their output; with fewer layers training it saves
forward passes too.

The layers are called the way the encoder's own loop calls them: the extra arguments (attention
mask in the form the attention implementation wants, position embeddings for rotary models…)
are captured from a real forward pass of each batch, stopped before the first layer runs, so no
mask format is rebuilt here. Hidden states are kept per text for its real tokens only and
re-padded per batch: with a correct mask, padding never changes the real tokens' states.

Nothing after the layer loop is reproduced (a final norm, say), so the shortcut is checked
once against the full forward pass; :meth:`FrozenLayerCache.build` returns ``None`` when they
disagree and the caller trains through the whole encoder instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

log = logging.getLogger("transferkit")

# pooled embeddings from the shortcut and the full pass must agree this closely
_TOLERANCE = 1e-4


class _Stop(Exception):
    """Raised from a forward pre-hook to end a pass once the wanted inputs are captured."""


def _capture_layer_inputs(encoder, layer: nn.Module, input_ids, attention_mask):
    """(args, kwargs) the encoder passes to ``layer`` for this batch; the pass stops there."""
    captured: dict = {}

    def hook(_module, args, kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        raise _Stop

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        encoder.model(input_ids=input_ids, attention_mask=attention_mask)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "args" not in captured:
        raise RuntimeError(f"{type(layer).__name__} was not called by the encoder's forward pass")
    return captured["args"], captured["kwargs"]


def _hidden(output) -> torch.Tensor:
    """A transformer layer's new hidden states (older transformers return a tuple)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class FrozenLayerCache:
    """Hidden states of the training texts at layer ``start`` and a forward pass from there.

    ``forward(x)`` takes the packed ``(B, 2, L)`` ids + mask batch of ``TextBatches`` plus the
    row indices of its texts and returns pooled embeddings, like ``TextEncoder.forward``.
    """

    def __init__(self, encoder, layers: nn.ModuleList, start: int, states: list[torch.Tensor]):
        self.encoder = encoder
        self.layers = layers
        self.start = start
        self.states = states  # per text: (real tokens, hidden) at the input of layers[start]

    @classmethod
    def for_top_layers(cls, encoder, batches, trainable: int) -> FrozenLayerCache | None:
        """The cache when the top ``trainable`` layer groups of ``encoder.layer_groups()``
        train (one group per transformer layer above the embeddings); ``None`` when every
        layer trains."""
        from transferkit.backbones.text_models import transformer_layer_list

        _, n_layers = transformer_layer_list(encoder.model)
        return cls.build(encoder, batches, n_layers - trainable)

    @classmethod
    def build(cls, encoder, batches, start: int) -> FrozenLayerCache | None:
        """Cache the inputs of ``layers[start]`` for every text of ``batches`` (a
        ``TextBatches``); ``None`` when the shortcut does not reproduce the encoder."""
        from transferkit.backbones.text_models import transformer_layer_list

        prefix, n_layers = transformer_layer_list(encoder.model)
        if not 0 <= start < n_layers:
            return None
        layers = encoder.model.get_submodule(prefix)
        was_training = encoder.training
        encoder.eval()
        states: list[torch.Tensor | None] = [None] * len(batches)
        try:
            with torch.no_grad():
                for rows, x in batches.by_length():
                    args, _ = _capture_layer_inputs(encoder, layers[start], x[:, 0], x[:, 1])
                    lengths = x[:, 1].sum(1).tolist()
                    for row, hidden, n in zip(rows, args[0], lengths):
                        states[row] = hidden[: int(n)].clone()
                cache = cls(encoder, layers, start, states)
                rows = list(range(min(len(batches), 4)))  # a check, not a second pass
                x, _ = batches.pack(rows)
                error = (cache.forward(x, rows) - encoder(x)).abs().max().item()
        except Exception as exc:  # an architecture whose loop this cannot follow
            log.info("contrastive: training through the whole encoder (%s)", exc)
            return None
        finally:
            encoder.train(was_training)
        if not error <= _TOLERANCE:
            log.info(
                "contrastive: training through the whole encoder (the cached lower layers "
                "differ from its forward pass by %.2g)",
                error,
            )
            return None
        return cache

    def forward(self, x: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """Pooled embeddings of the packed batch ``x`` whose texts are ``rows``."""
        input_ids, attention_mask = x[:, 0], x[:, 1]
        with torch.no_grad():  # masks and position embeddings: computed by the frozen bottom
            args, kwargs = _capture_layer_inputs(
                self.encoder, self.layers[0], input_ids, attention_mask
            )
        first = self.states[rows[0]]
        hidden = first.new_zeros((len(rows), input_ids.shape[1], first.shape[-1]))
        for i, row in enumerate(rows):
            hidden[i, : len(self.states[row])] = self.states[row]
        for layer in self.layers[self.start :]:
            hidden = _hidden(layer(hidden, *args[1:], **kwargs))
        return self.encoder.pool(hidden, attention_mask)
