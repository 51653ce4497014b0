"""The fine-tuning engine: freezing, layer-wise learning rates, schedule, early stopping,
checkpoints, L2-SP, engine hooks (``hooks``), trainable-parameter policies (``trainable``) and the
training loop (``engine.Finetuner``).

Import the modules directly (``transferkit.finetune.engine``...): this package imports nothing,
so reading a fine-tuning config never loads torch.
"""
