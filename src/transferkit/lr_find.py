"""``transferkit lr-find``: the learning-rate range test of ``finetune``, with a plot and JSON.

It builds what a fine-tuning run builds (a classifier, its strategy's prepared data and model)
and stops at the range test: a command at the training level, above the strategy it runs.
"""

from __future__ import annotations

from typing import Any

from transferkit.errors import BadInputError

LR_FIND_MODES = ("head", "unfrozen")


def find_learning_rate(
    data,
    out,
    *,
    backbone: str | None = None,
    mode: str = "head",
    unfreeze_groups: int = 5,
    num_steps: int | None = None,
    augment: str = "light",
    seed: int = 0,
    weights=None,
    **classifier_params: Any,
) -> dict[str, Any]:
    """``transferkit lr-find``: the LR range test, with a plot and JSON.

    ``head`` (default) is the test ``finetune`` runs when no learning rate is given: a fresh head
    on the cached embeddings (seconds). ``unfrozen`` warms the head up, unfreezes the top
    ``unfreeze_groups`` layer groups and runs the test through the images (minutes; for experts
    checking the stage-2 rate).
    """
    from pathlib import Path

    import torch

    from transferkit.atomic import write_json_atomic
    from transferkit.backbones import resolve_backbone
    from transferkit.estimator import TransferClassifier
    from transferkit.finetune.engine import Finetuner, head_lr_find, train_head
    from transferkit.modalities import get_modality, load_dataset
    from transferkit.strategies.finetune import FinetuneStrategy

    if mode not in LR_FIND_MODES:
        raise BadInputError(f"mode must be one of {', '.join(LR_FIND_MODES)}; got {mode!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is an existing file; give a directory for the plot")
    strict = bool(classifier_params.get("strict", False))
    ds = load_dataset(data, strict=strict)
    ds.check_trainable()
    modality = get_modality(ds.modality)
    backbone = backbone or modality.default_backbone_name
    if modality.default_augment == "none":
        augment = "none"  # the augmentations are image operations
    strategy = FinetuneStrategy(unfreeze_groups=unfreeze_groups, augment=augment)
    clf = TransferClassifier(backbone=backbone, weights=weights, seed=seed, **classifier_params)
    clf.backbone_ = resolve_backbone(backbone, weights=weights)
    modality.check_backbone(clf.backbone_, ds)
    prep = strategy.prepare(clf.backbone_, ds, embed=clf._embed, seed=seed)
    (X, y), held_out = prep.embeddings()
    cfg = strategy.config
    if mode == "head":
        head = torch.nn.Linear(X.shape[1], len(prep.train.labels))
        result = head_lr_find(head, X.float(), y.long(), seed, num_steps=num_steps or 80)
        unfrozen = 0
    else:
        head_result = head_lr_find(prep.model.head, X.float(), y.long(), seed)
        train_head(
            prep.model.head,
            (X.float(), y.long()),
            None if held_out is None else (held_out[0].float(), held_out[1].long()),
            epochs=cfg.head_epochs,
            lr=head_result.suggestion,
            weight_decay=cfg.weight_decay,
            label_smoothing=cfg.label_smoothing,
            batch_size=cfg.batch_size,
            seed=seed,
        )
        finder = Finetuner(prep.model, cfg, seed=seed)
        result = finder.find_lr(prep.train_batches, num_steps=num_steps or 60)
        unfrozen = finder.target_groups
    out.mkdir(parents=True, exist_ok=True)
    plot = result.plot_png(out / "lr_find.png")
    summary = {
        "suggestion": result.suggestion,
        "reason": result.reason,
        "backbone": backbone,
        "mode": mode,
        "unfrozen_groups": unfrozen,
        "plot": str(plot),
        "json": str(out / "lr_find.json"),
    }
    write_json_atomic(out / "lr_find.json", {**summary, **result.to_dict()})
    return summary
