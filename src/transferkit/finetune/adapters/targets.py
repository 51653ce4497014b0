"""Where adapters go in each architecture: the encoder inside a backbone module, the linear
layers LoRA adapts, and the sub-layers a bottleneck adapter follows.

LoRA: the attention query and value projections by default (Hu et al.'s choice), or every
attention and feed-forward linear layer (``"all"``), under each family's own module names:
BERT-style Hugging Face encoders (``query``/``value``), wav2vec2 / HuBERT / Whisper-style
(``q_proj``/``v_proj``), DistilBERT (``q_lin``/``v_lin``), timm ViTs (``qkv``).

Bottleneck adapters follow a transformer layer's attention output (``mh_adapter``) and its
feed-forward output (``output_adapter``): in BERT-style encoders the ``attention.output`` and
``output`` modules (dense → dropout → LayerNorm(h + input)), where AdapterHub puts them too;
in timm ViTs (pre-norm) the ``attn`` and ``mlp`` branches or the whole block.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from transferkit.errors import BadInputError

# what works, for the errors that refuse a backbone
WORKS_WITH = (
    "transformer encoders: all_minilm_l6_v2, hf:/st: text models, hf: audio encoders "
    "(wav2vec2, HuBERT, AST, Whisper) and timm: vision transformers"
)

# (the attention set found in a model, every attention + feed-forward linear of that family)
_LORA_FAMILIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("query", "value"),
        ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"),
    ),
    (
        ("q_proj", "v_proj"),
        (
            "q_proj",
            "k_proj",
            "v_proj",
            "out_proj",
            "fc1",
            "fc2",
            "intermediate_dense",
            "output_dense",
        ),
    ),  # fmt: skip
    (("q_lin", "v_lin"), ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2")),
    (("qkv",), ("qkv", "attn.proj", "mlp.fc1", "mlp.fc2")),
)


def encoder_root(module: nn.Module) -> tuple[str, nn.Module]:
    """(attribute, module) of the network inside a transferkit backbone module that adapters
    go into: a Hugging Face model (``TextEncoder.model``, ``AudioBackbone.net``) or a timm one
    (``Backbone.model``); its state-dict keys are the ones peft and AdapterHub use."""
    for attr in ("model", "net"):
        child = getattr(module, attr, None)
        if isinstance(child, nn.Module):
            return attr, child
    raise _no_place(module)


def _no_place(module) -> BadInputError:
    name = getattr(module, "name", type(module).__name__)
    return BadInputError(
        f"{name} has no transformer layers to put adapters in; --strategy adapter works with "
        f"{WORKS_WITH}. Use --strategy features (or finetune, if it is trainable) with {name}."
    )


def _linear_names(root: nn.Module) -> list[str]:
    return [n for n, m in root.named_modules() if isinstance(m, nn.Linear)]


def _present(target: str, names: list[str]) -> bool:
    # peft's matching: the module name, or its dotted suffix
    return any(n == target or n.endswith("." + target) for n in names)


def lora_targets(module: nn.Module, wanted: str | list[str]) -> list[str]:
    """The module names (peft ``target_modules``) LoRA adapts in ``module``'s encoder:
    ``wanted`` is ``"attention"``, ``"all"`` or an explicit list (each must exist)."""
    _, root = encoder_root(module)
    names = _linear_names(root)
    if isinstance(wanted, list):
        absent = [t for t in wanted if not _present(t, names)]
        if absent:
            known = ", ".join(sorted({n.split(".")[-1] for n in names})[:12])
            raise BadInputError(
                f"{getattr(module, 'name', '')} has no linear layer named {', '.join(absent)}; "
                f"its linear layers include {known}"
            )
        return list(wanted)
    for attention, every in _LORA_FAMILIES:
        if all(_present(t, names) for t in attention):
            chosen = attention if wanted == "attention" else every
            return [t for t in chosen if _present(t, names)]
    raise _no_place(module)


@dataclass(frozen=True)
class Site:
    """One place a bottleneck adapter follows.

    ``kind``: ``"post_norm"`` (a BERT-style output module: dense → dropout → LayerNorm(h + x)),
    ``"branch"`` (a pre-norm branch whose output joins the residual: ViT ``attn``/``mlp``) or
    ``"block"`` (a whole pre-norm block, whose output is the residual stream)."""

    path: str  # module name under the encoder root
    kind: str
    location: str  # AdapterHub's: "mh_adapter" or "output_adapter"
    width: int


def _post_norm_site(layer: nn.Module, child: str, location: str, prefix: str) -> Site | None:
    try:
        sub = layer.get_submodule(child)
    except AttributeError:
        return None
    dense, norm = getattr(sub, "dense", None), getattr(sub, "LayerNorm", None)
    if isinstance(dense, nn.Linear) and isinstance(norm, nn.LayerNorm):
        return Site(f"{prefix}.{child}", "post_norm", location, dense.out_features)
    return None


def bottleneck_sites(module: nn.Module, *, mh: bool, output: bool, ln_before: bool) -> list[Site]:
    """Where a bottleneck adapter goes in ``module``'s encoder, one site per layer and
    location; ``ln_before`` (Pfeiffer) reads the residual stream rather than the sub-layer."""
    _, root = encoder_root(module)
    sites: list[Site] = []
    blocks = getattr(root, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and all(
        hasattr(b, "attn") and hasattr(b, "mlp") for b in blocks
    ):  # timm ViT-style pre-norm blocks
        if mh and ln_before:
            raise BadInputError(
                f"{getattr(module, 'name', '')}: a pre-norm vision transformer has no "
                "normalised attention output to place an mh_adapter with original_ln_before; "
                "use the houlsby or pfeiffer adapter"
            )
        for i, block in enumerate(blocks):
            width = int(block.mlp.fc2.out_features)
            if mh:
                sites.append(Site(f"blocks.{i}.attn", "branch", "mh_adapter", width))
            if output:
                kind, path = (
                    ("block", f"blocks.{i}") if ln_before else ("branch", f"blocks.{i}.mlp")
                )
                sites.append(Site(path, kind, "output_adapter", width))
        return sites
    from transferkit.backbones.text_models import transformer_layer_list

    try:
        prefix, n_layers = transformer_layer_list(root)
    except RuntimeError:
        raise _no_place(module) from None
    for i in range(n_layers):
        layer_path = f"{prefix}.{i}"
        layer = root.get_submodule(layer_path)
        found = [
            _post_norm_site(layer, "attention.output", "mh_adapter", layer_path) if mh else None,
            _post_norm_site(layer, "output", "output_adapter", layer_path) if output else None,
        ]
        if (mh and found[0] is None) or (output and found[1] is None):
            raise BadInputError(
                f"{getattr(module, 'name', '')}: bottleneck adapters need BERT-style layers "
                "(attention.output / output with dense and LayerNorm) or timm ViT blocks; "
                f"this encoder ({type(root).__name__}) has other layers. Use --adapter lora."
            )
        sites += [s for s in found if s is not None]
    return sites
