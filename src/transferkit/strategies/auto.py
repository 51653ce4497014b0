"""``--strategy auto``: pick the transfer strategy from the data, the encoder and the machine.

What decides, in order (each rule measured on our benchmarks, see BENCHMARKS.md):

1. **A frozen encoder** (USE, word vectors) can only give features.
2. **Text with a trainable sentence encoder**: ``contrastive`` (SetFit-style) beats a head on
   frozen embeddings at 8-64 examples per class, for a minute or two of CPU.
3. **Audio**: ``features``. Fine-tuning aisfx measured 0.642 against 0.715 for the head alone on
   Sonic Pi (5-fold CV) and 0.929 against 0.921 on espeak words (BENCHMARKS.md, ``audio``).
4. **Images with a trainable encoder**: ``features`` unless all of
   - the *domain gap* is large: a k-NN probe on the frozen embeddings (leave-one-out) reaches
     less than ``DOMAIN_GAP_KNN`` — the pretrained features do not separate the classes, so the
     encoder itself must adapt. (On Fashion-MNIST, where k-NN reaches ~0.75, fine-tuning now
     beats features by 3.8 points but costs ~35x the CPU time; the threshold was set before
     that and has not been re-measured on the ranking datasets);
   - there are at least ``FINETUNE_MIN_PER_CLASS`` examples per class (fewer overfit the
     encoder, and early stopping has no validation signal to go on);
   - the compute fits: a GPU, or at most ``CPU_FINETUNE_MAX_EXAMPLES`` examples on a CPU
     (about ten minutes of fine-tuning on a 2-core laptop).
"""

from __future__ import annotations

DOMAIN_GAP_KNN = 0.6
FINETUNE_MIN_PER_CLASS = 20
CPU_FINETUNE_MAX_EXAMPLES = 2000


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def needs_separability(dataset, spec) -> bool:
    """Whether ``choose_strategy`` would look at the frozen k-NN probe for this data."""
    from transferkit.modalities import get_modality

    return spec.trainable and get_modality(dataset.modality).auto_strategy(dataset, spec) is None


def choose_strategy(
    dataset, spec, *, separability: float | None = None, gpu: bool | None = None
) -> tuple[str, str]:
    """(strategy name, the reason in one sentence) for ``dataset`` encoded by ``spec``.

    ``separability``: leave-one-out k-NN accuracy of the frozen embeddings (None: unknown, which
    keeps the safe ``features``); ``gpu``: whether a CUDA device is there (None: look).
    Text and audio decide by their modality (``Modality.auto_strategy``): rules 2 and 3.
    """
    from transferkit.modalities import get_modality

    counts = [c for c in dataset.class_counts().values() if c]
    low, high, n = min(counts), max(counts), sum(counts)
    if not spec.trainable:
        return "features", "a frozen encoder: frozen embeddings + a head"
    decided = get_modality(dataset.modality).auto_strategy(dataset, spec)
    if decided is not None:
        return decided
    if separability is None:
        return "features", f"{dataset.modality} data: frozen embeddings + a head (fast, safe)"
    probe = f"a k-NN probe on the frozen {spec.name} embeddings reaches {separability:.0%}"
    if separability >= DOMAIN_GAP_KNN:
        return "features", f"{probe}: the pretrained features already fit, so a head on them"
    if low < FINETUNE_MIN_PER_CLASS:
        return (
            "features",
            f"{probe} (a large domain gap), but with {low} examples in the smallest class "
            f"(< {FINETUNE_MIN_PER_CLASS}) fine-tuning would overfit: a head on frozen features",
        )
    gpu = gpu_available() if gpu is None else gpu
    if not gpu and n > CPU_FINETUNE_MAX_EXAMPLES:
        return (
            "features",
            f"{probe} (a large domain gap), but fine-tuning {n} examples on a CPU would take "
            "too long: a head on frozen features (fine-tune on a GPU with --strategy finetune)",
        )
    where = "a GPU" if gpu else f"{n} examples, within a CPU's budget"
    return (
        "finetune",
        f"{probe} (a large domain gap) with {low}-{high} examples per class and {where}: "
        "fine-tune the encoder",
    )
