"""Fashion-MNIST, 50 images per class: `finetune` vs `features` vs the tutorial recipe.

Three contenders per seed (0, 1, 2; 50 training images per class drawn from the official
training set; the first 2000 official test images), all MobileNetV2 ImageNet-1k V1 on this CPU:

- transferkit ``--strategy finetune`` with its defaults (head warm-up on cached embeddings, LR
  finder, gradual unfreezing of the top layer groups; with 50 images per class no validation
  split is held out — it would hold fewer than 10 a class — so all 500 train for the 12-epoch
  budget and the last epoch is kept);
- transferkit ``--strategy features`` (the default strategy);
- the recipe most tutorials show, written out by hand here: every backbone weight frozen (backbone
  in eval mode), the classifier replaced by a new ``nn.Linear(1280, 10)``, Adam lr 1e-3 on that
  layer only, 15 epochs with every image through the frozen backbone each epoch
  (torchvision's ``weights.transforms()``, batch 32, shuffled).

Time compared: training only. transferkit's is its fit time from metrics.json (embedding,
warm-up, LR finder and every epoch); the recipe's is its 15-epoch loop (decoding included, as a
DataLoader would). Both also report the wall time of the whole command for context.

The second part is ``--baseline``: on seed 0, finetune with the from-scratch baseline (the
pretrained model must win by a wide margin), and a constructed dataset where the label is a
faint, one-pixel-fine stripe direction that ImageNet features smooth away; there the baseline
must report negative transfer.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _common as c
from benchmarks import datasets

NAME = "finetune"
TITLE = "Fine-tuning: Fashion-MNIST, 50 images per class (and the from-scratch baseline)"
K_PER_CLASS = 50
SEEDS = (0, 1, 2)
N_TEST = 2000
RECIPE_EPOCHS = 15
RECIPE_BATCH = 32
MARGIN_POINTS = 3.0
WIDE_MARGIN_POINTS = 10.0
SCRATCH_LEARNS = 0.75  # on the two-class ramps data


# ----------------------------------------------------------------------------- the recipe


def _recipe(train_dir: Path, test_dir: Path, seed: int, epochs: int) -> dict:
    """The tutorial recipe, timed; returns accuracy and seconds."""
    import torch
    from PIL import Image

    torch.manual_seed(seed)
    torch.set_num_threads(c.NUM_THREADS)
    model = c.load_mobilenet_v2_embedder()  # classifier removed: 1280-d pooled features
    for p in model.parameters():
        p.requires_grad_(False)
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 10))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    tf = c.imagenet_transform()
    files, y = datasets.list_folder_images(train_dir)
    y = torch.as_tensor(y)
    test_files, test_y = datasets.list_folder_images(test_dir)

    def load(paths):
        out = []
        for f in paths:
            with Image.open(f) as im:
                out.append(tf(im.convert("RGB")))
        return torch.stack(out)

    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.eval()  # the careful variant: frozen BatchNorm statistics stay as pretrained
    losses = []
    for _ in range(epochs):
        head.train()
        order = torch.randperm(len(files), generator=gen)
        total = 0.0
        for i in range(0, len(order), RECIPE_BATCH):
            idx = order[i : i + RECIPE_BATCH]
            x = load([files[j] for j in idx])
            with torch.no_grad():
                feats = model(x)
            loss = torch.nn.functional.cross_entropy(head(feats), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(files))
    seconds_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    head.eval()
    pred = []
    with torch.inference_mode():
        for i in range(0, len(test_files), 64):
            pred.append(head(model(load(test_files[i : i + 64]))).argmax(1).numpy())
    accuracy = float(np.mean(np.concatenate(pred) == np.asarray(test_y)))
    return {
        "accuracy": accuracy,
        "seconds_train": seconds_train,
        "seconds_eval": time.perf_counter() - t0,
        "epochs": epochs,
        "train_loss": losses,
    }


# ----------------------------------------------------------------------------- transferkit


def _transferkit(train_dir, test_dir, run_dir, env, strategy, extra=()) -> dict:
    args = ["train", train_dir, "--test", test_dir, "--out", run_dir]
    args += ["--backbone", "mobilenet_v2", "--strategy", strategy, "--no-progress", *extra]
    wall, _ = c.run_cli(args, env)
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    seconds = metrics.get("seconds", {})
    out = {
        "accuracy": float(metrics["accuracy"]),
        "macro_f1": float(metrics["macro_f1"]),
        "seconds_wall": wall,
        "seconds_fit": float(seconds.get("extract", 0.0)) + float(seconds.get("train", 0.0)),
        "seconds": seconds,
        "command": c.display_command(args),
    }
    if "training" in metrics:
        t = metrics["training"]
        out["best_epoch"] = t.get("best_epoch")
        out["epochs_run"] = len(t.get("history", [])) - 1
        out["lr"] = (t.get("lrs") or {}).get("lr")
    if "baseline" in metrics:
        out["baseline"] = {k: v for k, v in metrics["baseline"].items() if k != "training"}
    return out


# ----------------------------------------------------------------------------- negative transfer


def write_ramps_dataset(root: Path, per_class: int, seed: int) -> Path:
    """Two classes told apart only by the direction of a brightness ramp (left→right or back).

    Each 256x256 grey image (no resize before the 224 crop) is a horizontal ramp between two
    random grey levels plus a blurred random texture; ``rising`` brightens to the right,
    ``falling`` to the left. ImageNet training mirrors images at random, so pretrained pooled
    features are built to ignore left-right direction; a network trained from scratch learns
    a horizontal gradient detector in its first layer.
    """
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    size = 256
    for label in ("rising", "falling"):
        (root / label).mkdir(parents=True, exist_ok=True)
    x = np.linspace(0.0, 1.0, size)[None, :]
    for i in range(per_class * 2):
        label = ("rising", "falling")[i % 2]
        lo, hi = sorted(rng.uniform(30, 225, size=2))
        hi = max(hi, lo + 40)
        ramp = lo + (hi - lo) * (x if label == "rising" else 1 - x)
        noise = Image.fromarray(rng.integers(0, 256, (32, 32)).astype(np.uint8))
        noise = noise.resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(4))
        px = ramp + (np.asarray(noise).astype(np.float64) - 128) * 0.5
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(root / label / f"{i:04d}.png")
    return root


# ----------------------------------------------------------------------------- run


def run(quick: bool) -> dict:
    seeds = SEEDS[:1] if quick else SEEDS
    n_test = 200 if quick else N_TEST
    recipe_epochs = 2 if quick else RECIPE_EPOCHS
    data = {s: datasets.write_fashion_folders(K_PER_CLASS, s, n_test=n_test) for s in seeds}
    extra = ["--epochs", "2"] if quick else []
    results: dict = {"finetune": {}, "features": {}, "recipe": {}}
    with tempfile.TemporaryDirectory(prefix="tk-bench-ft-") as tmp:
        env = c.transferkit_env(cache_dir=Path(tmp) / "cache")
        for seed in seeds:
            train_dir, test_dir = data[seed]
            results["recipe"][seed] = _recipe(train_dir, test_dir, seed, recipe_epochs)
            results["features"][seed] = _transferkit(
                train_dir, test_dir, Path(tmp) / f"features-{seed}", env, "features"
            )
            results["finetune"][seed] = _transferkit(
                train_dir, test_dir, Path(tmp) / f"finetune-{seed}", env, "finetune", extra
            )
        # --baseline on Fashion-MNIST (seed 0) and on the constructed ramps data
        train_dir, test_dir = data[seeds[0]]
        baseline = _transferkit(
            train_dir,
            test_dir,
            Path(tmp) / "baseline",
            env,
            "finetune",
            [*extra, "--baseline"],
        )
        ramps = write_ramps_dataset(Path(tmp) / "ramps", 20 if quick else 40, seed=0)
        ramps_test = write_ramps_dataset(Path(tmp) / "ramps-test", 20 if quick else 100, 1)
        # --augment none: a mirrored ramp is the other class
        negative = _transferkit(
            ramps,
            ramps_test,
            Path(tmp) / "negative",
            env,
            "features",
            ["--baseline", "--augment", "none"],
        )

    def mean(kind):
        return float(np.mean([results[kind][s]["accuracy"] for s in seeds]))

    ft, feat, rec = mean("finetune"), mean("features"), mean("recipe")
    ft_time = float(np.mean([results["finetune"][s]["seconds_fit"] for s in seeds]))
    rec_time = float(np.mean([results["recipe"][s]["seconds_train"] for s in seeds]))
    rows = []
    for s in seeds:
        rows.append(
            c.row(
                f"accuracy, seed {s}: finetune | features | recipe",
                f"{results['finetune'][s]['accuracy']:.4f}",
                f"{results['features'][s]['accuracy']:.4f} | "
                f"{results['recipe'][s]['accuracy']:.4f}",
            )
        )
    rows.append(
        c.row(
            "mean accuracy: finetune vs features",
            f"{ft:.4f}",
            f"{feat:.4f}",
            f"{100 * (ft - feat):+.1f} pts",
            f"≥ +{MARGIN_POINTS:g} pts",
            c.verdict(100 * (ft - feat) >= MARGIN_POINTS),
        )
    )
    rows.append(
        c.row(
            f"mean accuracy: finetune vs recipe ({recipe_epochs} epochs)",
            f"{ft:.4f}",
            f"{rec:.4f}",
            f"{100 * (ft - rec):+.1f} pts",
            f"≥ +{MARGIN_POINTS:g} pts",
            c.verdict(100 * (ft - rec) >= MARGIN_POINTS),
        )
    )
    rows.append(
        c.row(
            "mean training seconds: finetune (fit) vs recipe (15 epochs)",
            f"{ft_time:.1f}",
            f"{rec_time:.1f}",
            f"{ft_time / rec_time:.2f}",
            "≤ 1.00",
            c.verdict(ft_time <= rec_time),
        )
    )
    b = baseline["baseline"]
    rows.append(
        c.row(
            "--baseline on Fashion-MNIST (seed 0): finetune vs scratch",
            f"{baseline['accuracy']:.4f}",
            f"{b['accuracy']:.4f}",
            f"{b['delta_points']:+.1f} pts",
            f"transfer_helped, ≥ +{WIDE_MARGIN_POINTS:g} pts",
            c.verdict(
                b["verdict"] == "transfer_helped" and b["delta_points"] >= WIDE_MARGIN_POINTS
            ),
        )
    )
    nb = negative["baseline"]
    rows.append(
        c.row(
            "--baseline on left/right ramps data: features vs scratch",
            f"{negative['accuracy']:.4f}",
            f"{nb['accuracy']:.4f}",
            f"{nb['delta_points']:+.1f} pts",
            f"negative_transfer, scratch ≥ {SCRATCH_LEARNS:g}",
            # a scratch model at chance "beating" features below chance proves nothing
            c.verdict(nb["verdict"] == "negative_transfer" and nb["accuracy"] >= SCRATCH_LEARNS),
        )
    )
    notes = [
        "finetune command: `" + results["finetune"][seeds[0]]["command"] + "` (per seed; "
        "embedding cache shared across runs in one temp dir)",
        "finetune: learning rate chosen by the LR finder per seed: "
        + ", ".join(f"seed {s}: {results['finetune'][s].get('lr', 0):.2g}" for s in seeds)
        + "; best epoch: "
        + ", ".join(str(results["finetune"][s].get("best_epoch")) for s in seeds),
        "wall seconds per seed (whole command incl. encoding the 2000 test images): finetune "
        + ", ".join(f"{results['finetune'][s]['seconds_wall']:.0f}" for s in seeds)
        + "; recipe train+eval "
        + ", ".join(
            f"{results['recipe'][s]['seconds_train'] + results['recipe'][s]['seconds_eval']:.0f}"
            for s in seeds
        ),
        "baseline verdicts: Fashion-MNIST — " + b["message"] + "; ramps — " + nb["message"],
    ]
    if quick:
        notes.append("QUICK run: 1 seed, 200 test images, 2 epochs — smoke test only")
    return {
        "name": NAME,
        "title": TITLE,
        "rows": rows,
        "notes": notes,
        "data": {
            "quick": quick,
            "seeds": list(seeds),
            "results": {k: {str(s): v for s, v in d.items()} for k, d in results.items()},
            "baseline_fashion_mnist": baseline,
            "baseline_ramps": negative,
        },
    }
