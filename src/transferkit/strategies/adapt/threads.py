"""The adaptation methods' numerics (alignments, domain classifiers, labelling heads, KMM) run
on one BLAS thread: on this busy 2-core machine (load ~9) the threads' spinning turned a 0.1 s
logistic regression on 900 × 64 digits into 8 s, and CORAL on 2,000 × 1,280 embeddings took
25 s against 1 s on one thread (the linear heads measured the same for their fits)."""

from __future__ import annotations

from contextlib import AbstractContextManager


def one_blas_thread() -> AbstractContextManager:
    """A context in which numpy's and scikit-learn's BLAS use one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)
