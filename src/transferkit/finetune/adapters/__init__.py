"""Adapters: small trainable modules inside a frozen pretrained encoder (LoRA through peft;
Houlsby / Pfeiffer bottleneck adapters with AdapterHub's names), the policy that trains only them,
their state as shareable files, and several adapters sharing one base in memory."""
