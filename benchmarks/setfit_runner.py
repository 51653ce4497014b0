"""Train and test SetFit on one K-shot CSV task; runs inside the SetFit environment.

Usage: python setfit_runner.py TRAIN.csv TEST.csv MODEL_DIR SEED THREADS [NUM_ITERATIONS]
Prints one JSON line: accuracy, training seconds, the settings used.

SetFit's defaults (``TrainingArguments()``) except: ``seed``, a temporary ``output_dir``,
``report_to="none"`` (no experiment trackers) and, when given, ``num_iterations`` (what the
issue's own SetFit figures used at K=64, where the default pair sampling takes far longer).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time


def _read(path: str) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as fp:
        rows = list(csv.DictReader(fp))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main() -> None:
    # this folder holds a datasets.py of its own, which must not shadow Hugging Face datasets
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    train_csv, test_csv, model_dir, seed, threads = sys.argv[1:6]
    iterations = int(sys.argv[6]) if len(sys.argv) > 6 else None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(int(threads))
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    texts, labels = _read(train_csv)
    test_texts, test_labels = _read(test_csv)
    model = SetFitModel.from_pretrained(model_dir, labels=sorted(set(labels)))
    with tempfile.TemporaryDirectory() as out:
        kwargs = {"seed": int(seed), "output_dir": out, "report_to": "none"}
        if iterations:
            kwargs["num_iterations"] = iterations
        args = TrainingArguments(**kwargs)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict({"text": texts, "label": labels}),
        )
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    predicted = list(model.predict(test_texts))
    accuracy = sum(p == t for p, t in zip(predicted, test_labels)) / len(test_labels)
    print(
        json.dumps(
            {
                "accuracy": accuracy,
                "seconds_train": seconds,
                "num_iterations": iterations,
                "threads": int(threads),
            }
        )
    )


if __name__ == "__main__":
    main()
