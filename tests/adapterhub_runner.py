"""Run by tests/test_adapter_adapterhub.py in a subprocess whose PYTHONPATH puts AdapterHub's
``adapters`` 1.3.0 and the transformers 4.57 it pins first (they cannot live beside the
project's transformers 5).

    python adapterhub_runner.py save MODEL_DIR WORK     # their adapters, saved with safetensors
    python adapterhub_runner.py load MODEL_DIR WORK     # ours, loaded by their load_adapter

WORK holds ``batch.npz`` (input_ids, attention_mask) and ``jobs.json`` ([{"name", "config"
(save) or "folder" (load)}]); each job writes ``<name>.npy``, the encoder's token states with
that adapter active.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(action: str, model_dir: str, work: str) -> None:
    import adapters
    from transformers import BertModel

    work_dir = Path(work)
    batch = np.load(work_dir / "batch.npz")
    inputs = {k: torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask")}
    for i, job in enumerate(json.loads((work_dir / "jobs.json").read_text())):
        model = BertModel.from_pretrained(model_dir).eval()
        adapters.init(model)
        if action == "save":
            model.add_adapter(job["name"], config=job["config"], set_active=True)
            gen = torch.Generator().manual_seed(i)
            with torch.no_grad():  # their initialisation changes nothing: make it count
                for name, p in model.named_parameters():
                    if f".{job['name']}." in name:
                        p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            model.save_adapter(str(work_dir / job["name"]), job["name"], use_safetensors=True)
        else:
            model.load_adapter(job["folder"], set_active=True, use_safetensors=True)
        with torch.no_grad():
            hidden = model(**inputs).last_hidden_state
        np.save(work_dir / f"{job['name']}.npy", hidden.numpy())


if __name__ == "__main__":
    main(*sys.argv[1:4])
