"""``contrastive``: few-shot contrastive fine-tuning of a sentence encoder, then a head.

The SetFit idea (Tunstall et al., 2022): with a handful of labelled texts, fine-tune the
encoder so that texts of the same class embed close together and texts of different classes
far apart (a cosine-similarity regression on pairs: 1 for same class, 0 otherwise), then fit
a simple head on the new embeddings. Pairs are where the signal is: N texts give N·(N-1)/2 of
them, while a classification loss on N examples is satisfied almost at once.

What differs from SetFit, for speed on a CPU: SetFit samples pairs and encodes both texts of
every pair (20 iterations × 2 pairs per text by default), so each text is encoded ~80 times per
run. Here each batch of texts is encoded once and *every* pair inside the batch contributes to
the loss, positive and negative pairs weighted equally (SetFit balances them by sampling).
The same objective, each text encoded once per epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.strategies.base import Strategy, StrategyResult


@dataclass
class ContrastiveConfig:
    """Shuffled batches of ``batch_size`` texts (every pair inside a batch counts), AdamW with
    ``warmup`` (fraction of steps) then cosine decay, for about ``passes`` text encodings and
    at least ``min_epochs`` passes over the data.

    Defaults chosen on Rotten Tomatoes (benchmarks/bench_text.py), all derived from the data
    size: batches of 16 texts below 128 training texts, 64 from there (4x the pairs per
    encoded text); ``lr`` SetFit's 2e-5 per 16 texts, scaled linearly with the batch; as many
    steps as ``passes`` encodings allow (64 steps of 16), and never fewer than ``min_epochs``
    epochs (128 texts: 24 steps of 64, which measured 0.756 against 0.723 for 16 steps on
    seed 0 of the K=64 task). ``epochs`` overrides both.
    """

    epochs: int | None = None
    passes: int = 1024
    min_epochs: int = 12
    lr: float | None = None
    batch_size: int | None = None
    weight_decay: float = 0.01
    warmup: float = 0.1
    # how many of the encoder's layer groups train, from the top (None: all). Frozen lower
    # layers cost no backward pass
    train_groups: int | None = None
    augment: str = "none"  # accepted for the common CLI option; texts are not augmented

    def __post_init__(self) -> None:
        for name in ("epochs", "passes", "min_epochs", "batch_size", "train_groups"):
            value = getattr(self, name)
            if value is None and name != "passes":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadInputError(f"{name} must be a whole number >= 1; got {value!r}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise BadInputError(f"lr must be a positive learning rate (e.g. 2e-5); got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise BadInputError(f"warmup must be a fraction in [0, 1); got {self.warmup}")

    def resolved(self, n_train: int) -> tuple[int, float]:
        """(batch size, learning rate) for ``n_train`` training texts."""
        batch = min(self.batch_size or (16 if n_train < 128 else 64), n_train)
        return batch, self.lr if self.lr is not None else 2e-5 * batch / 16


def pair_loss(embeddings, targets):
    """Mean squared error between the cosine similarity of every in-batch pair and 1 (same
    class) or 0 (different classes); positive and negative pairs weigh half each."""
    import torch
    import torch.nn.functional as F

    unit = F.normalize(embeddings, dim=1)
    cos = unit @ unit.T
    same = targets[:, None] == targets[None, :]
    off_diagonal = ~torch.eye(len(targets), dtype=torch.bool, device=embeddings.device)
    errors = (cos - same.float()) ** 2
    positive, negative = same & off_diagonal, ~same
    parts = [errors[m].mean() for m in (positive, negative) if m.any()]
    return sum(parts) / len(parts)


class ContrastiveStrategy(Strategy):
    name = "contrastive"
    Config = ContrastiveConfig
    default_head = "logistic"
    trains_backbone = True

    def fit(
        self,
        backbone,
        train,
        *,
        embed,
        head,
        seed=0,
        val=None,
        checkpoint_dir=None,
        resume=False,
        progress=True,
    ) -> StrategyResult:
        import torch
        from tqdm.auto import tqdm

        from transferkit.finetune.model import state_sha256
        from transferkit.finetune.schedule import warmup_cosine_scheduler
        from transferkit.finetune.text_batches import TextBatches

        cfg = self.config
        if backbone.spec.modality != "text" or not backbone.spec.trainable:
            raise BadInputError(
                f"--strategy contrastive fine-tunes sentence encoders; {backbone.name} is "
                f"{'not a text encoder' if backbone.spec.modality != 'text' else 'frozen'}. "
                "Use a trainable text backbone (e.g. all_minilm_l6_v2) or --strategy features."
            )
        if resume:
            raise BadInputError(
                "--strategy contrastive trains in a minute or two and keeps no checkpoints; "
                "run it again instead of --resume"
            )
        started = time.perf_counter()
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        module = backbone.materialize()
        batch_size, lr = cfg.resolved(len(train))
        batches = TextBatches(train.texts, train.targets, module, batch_size=batch_size)
        per_epoch = batches.num_batches()
        epochs = cfg.epochs or max(cfg.min_epochs, math.ceil(cfg.passes / batch_size / per_epoch))
        steps = epochs * per_epoch
        trainable = list(module.parameters())
        if cfg.train_groups is not None:
            from transferkit.finetune.freezing import set_unfrozen_groups

            groups = module.layer_groups()
            set_unfrozen_groups(module, groups, min(cfg.train_groups, len(groups)))
            trainable = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=cfg.weight_decay)
        scheduler = warmup_cosine_scheduler(
            optimizer, total_steps=steps, warmup_steps=int(cfg.warmup * steps)
        )
        history = []
        module.train()
        bar = tqdm(total=steps, desc="Contrastive", unit="batch", disable=not progress)
        try:
            for epoch in range(1, epochs + 1):
                total, n = 0.0, 0
                for x, y in batches.train_epoch(rng):
                    loss = pair_loss(module(x), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    total, n = total + float(loss.detach()) * len(y), n + len(y)
                    bar.update(1)
                    bar.set_postfix(loss=f"{total / n:.4f}")
                history.append({"epoch": epoch, "pair_loss": total / max(n, 1)})
        finally:
            bar.close()
        module.eval()
        module.weights_sha256 = state_sha256(module)
        module.weights_source = f"{self.name} of {backbone.name} ({backbone.weights_source})"
        seconds_train = time.perf_counter() - started
        encoded = embed(train, backbone=module)
        head.fit(encoded.embeddings, train.targets, seed=seed)
        return StrategyResult(
            n_train=len(train),
            info={
                "seconds_extract": encoded.seconds,
                "pretrained_weights_sha256": backbone.weights_sha256,
                "config_used": {
                    **asdict(cfg),
                    "epochs": epochs,
                    "batch_size": batch_size,
                    "lr": lr,
                },
                "contrastive": {
                    "history": history,
                    "steps": steps,
                    "seconds": seconds_train,
                    "pairs_per_epoch": sum(
                        m * (m - 1) // 2
                        for m in (
                            min(batch_size, len(train) - s)
                            for s in range(0, len(train), batch_size)
                        )
                    ),
                },
            },
            backbone=module,
            head=head,
        )
