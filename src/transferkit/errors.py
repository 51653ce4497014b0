"""Exception types. Each subclasses a built-in so callers can catch what they know.

Every message says what was found and what to do about it; the CLI prints it as-is and exits with
``exit_code`` (2 for input the user can fix, 1 for internal errors).
"""

from __future__ import annotations


class TransferkitError(Exception):
    """Base class for every error transferkit raises on purpose."""

    exit_code = 1


class BadInputError(TransferkitError, ValueError):
    """Data, arguments or files the user gave cannot be used; the message names them and the fix."""

    exit_code = 2


class UnreadableImageError(BadInputError):
    """One file could not be decoded as an image (corrupt, truncated, not an image, too large)."""


class WeightsUnavailableError(TransferkitError, RuntimeError):
    """No source (path, package, cache, download) could provide a backbone's pretrained weights."""

    exit_code = 2


class BundleError(BadInputError):
    """A model bundle is missing, truncated, tampered with or from an incompatible version."""


class NotFittedError(TransferkitError, ValueError, AttributeError):
    """An estimator or head was used before ``fit``; mirrors sklearn's NotFittedError."""
