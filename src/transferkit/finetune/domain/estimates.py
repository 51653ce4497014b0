"""The MMD estimates a run may ask for, apart from the losses so that the CLI and the
strategies' settings can name them without importing torch."""

ESTIMATES = ("quadratic", "linear")
