"""Training curves (inline SVG) and the training / from-scratch baseline sections of the report."""

from __future__ import annotations

import html
import re

from transferkit.baseline import ADVICE, baseline_section
from transferkit.report.curves import HEIGHT, PAD_B, PAD_L, PAD_R, PAD_T, WIDTH, history_svg
from transferkit.report.html import render_report
from transferkit.strategies.finetune import FinetuneStrategy

STAGES = ("head", "unfreeze:1", "unfreeze:2", "unfreeze:2")


def _record(epoch: int, stage: str, **kw) -> dict:
    return {
        "epoch": epoch,
        "stage": stage,
        "unfrozen_groups": int(stage.split(":")[1]) if ":" in stage else 0,
        "train_loss": 1.2 - 0.2 * epoch,
        "train_accuracy": 0.4 + 0.1 * epoch,
        "val_loss": 1.25 - 0.15 * epoch,
        "val_accuracy": 0.35 + 0.1 * epoch,
        "lr": 1e-3,
        "seconds": 0.5,
        **kw,
    }


def _training(stages=STAGES, **kw) -> dict:
    return {
        "history": [_record(i, s) for i, s in enumerate(stages)],
        "best_epoch": None,
        "best_val_accuracy": 0.65,
        "lrs": {"lr": 1e-3, "lr_source": "given", "head_lr": 1e-2},
        "stopped_early": False,
        "resumed_from_epoch": None,
        "seconds": 2.0,
        **kw,
    }


def training_curves_svg(training) -> str:
    """The charts of the finetune strategy's report section for ``training``."""
    section = FinetuneStrategy().report_section({"training": training})
    if section is None:
        return ""
    return history_svg(
        section.history, section.charts, best_epoch=section.best_epoch, note=section.note
    )


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, flags=re.S)


def _x(epoch: float, first: float = 0, last: float = 3) -> float:
    """Where the panels draw ``epoch`` (same formula as the renderer)."""
    return PAD_L + (epoch - first) / (last - first) * (WIDTH - PAD_L - PAD_R)


def _stage_lines(svg: str) -> list[tuple[float, str]]:
    return [
        (float(x1), title)
        for x1, x2, title in re.findall(
            r'<line x1="([\d.]+)" x2="([\d.]+)"[^>]*class="cstage"><title>([^<]*)</title>', svg
        )
    ]


def test_no_history_no_curves():
    assert training_curves_svg({}) == ""
    assert training_curves_svg({"history": []}) == ""
    assert training_curves_svg({"history": None, "best_epoch": 1}) == ""
    assert training_curves_svg({"history": [{"stage": "head"}]}) == ""  # no epoch: not a row


def test_two_panels_with_markers_exactly_at_the_stage_changes():
    out = training_curves_svg(_training())
    svgs = _svgs(out)
    assert out.count("<svg") == 2 and len(svgs) == 2
    assert 'aria-label="loss per epoch"' in svgs[0]
    assert 'aria-label="accuracy per epoch"' in svgs[1]
    for svg in svgs:
        lines = _stage_lines(svg)
        assert svg.count('class="cstage"') == 2
        # between epochs 0|1 (head -> 1 group) and 1|2 (-> 2 groups); none at 2|3 (no change)
        assert [round(x, 1) for x, _ in lines] == [round(_x(0.5), 1), round(_x(1.5), 1)]
        assert [t for _, t in lines] == ["1 groups", "2 groups"]
        assert 'class="cbest"' not in svg  # best_epoch None: no marker
        assert svg.count("<polyline") == 2  # train and validation
        assert svg.count("<circle") == 2 * len(STAGES)


def test_best_epoch_marker():
    svgs = _svgs(training_curves_svg(_training(best_epoch=2)))
    for svg in svgs:
        best = re.findall(r'<line x1="([\d.]+)" x2="([\d.]+)"[^>]*class="cbest">', svg)
        assert len(best) == 1
        assert float(best[0][0]) == float(best[0][1]) == round(_x(2), 1)
        assert "best epoch (weights kept)" in svg
    # a best epoch outside the plotted epochs draws no marker
    assert 'class="cbest"' not in training_curves_svg(_training(best_epoch=9))


def test_one_stage_draws_no_stage_marker():
    out = training_curves_svg(_training(stages=("scratch", "scratch", "scratch"), best_epoch=1))
    assert len(_svgs(out)) == 2
    assert 'class="cstage"' not in out
    assert out.count('class="cbest"') == 2


def test_accuracy_panel_has_a_fixed_0_to_1_range_and_missing_values_are_skipped():
    training = _training()
    training["history"][0]["val_loss"] = float("nan")
    training["history"][1]["val_accuracy"] = None
    loss, acc = _svgs(training_curves_svg(training))
    assert ">0.00</text>" in acc and ">1.00</text>" in acc
    assert "nan" not in loss.lower() and "nan" not in acc.lower()
    assert loss.count("<circle") == 2 * len(STAGES) - 1
    assert acc.count("<circle") == 2 * len(STAGES) - 1
    # every point lies inside the plotting frame
    for svg in (loss, acc):
        for cx, cy in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg):
            assert PAD_L - 0.1 <= float(cx) <= WIDTH - PAD_R + 0.1
            assert PAD_T - 0.1 <= float(cy) <= HEIGHT - PAD_B + 0.1


def _metrics(**extra) -> dict:
    labels = ["cat", "dog"]
    return {
        "accuracy": 0.6,
        "macro_f1": 0.58,
        "labels": labels,
        "confusion_matrix": [[3, 2], [2, 3]],
        "per_class": {
            lb: {"precision": 0.6, "recall": 0.6, "f1": 0.6, "support": 5} for lb in labels
        },
        "n_test": 10,
        "n_train": 40,
        "backbone": "tiny_cnn_test",
        "strategy": "finetune",
        "head": "linear",
        **extra,
    }


def test_report_has_a_training_section_and_nav_link():
    page = render_report(_metrics(training=_training(best_epoch=2)))
    assert '<section class="card" id="training"><h2>Training curves</h2>' in page
    assert '<a href="#training">Training curves</a>' in page
    section = page.split('id="training"', 1)[1].split("</section>", 1)[0]
    assert len(_svgs(section)) == 2
    assert "learning rate (head, stage 2)" in section
    assert "0.001 (given)" in section
    assert "learning rate (head warm-up)" in section


def test_report_without_training_has_no_curves():
    page = render_report(_metrics())
    assert 'id="training"' not in page
    assert "Training curves" not in page
    assert "<svg" not in page
    # a history-less training entry (e.g. nothing recorded) is no section either
    assert 'id="training"' not in render_report(_metrics(training={"history": []}))


def test_report_shows_negative_transfer_with_advice():
    base = baseline_section(
        {"accuracy": 0.6, "macro_f1": 0.58},
        {"accuracy": 0.75, "macro_f1": 0.74, "seconds": {}, "training": None},
        strategy="finetune",
        epochs=3,
    )
    assert base["verdict"] == "negative_transfer"
    page = render_report(_metrics(baseline=base))
    assert '<a href="#baseline">' in page
    section = page.split('id="baseline"', 1)[1].split("</section>", 1)[0]
    assert "Did transfer help?" in section
    assert f'<p class="verdict bad">{html.escape(base["message"])}</p>' in section
    assert "negative transfer" in section
    assert "What to try:" in section
    items = re.findall(r"<li>(.*?)</li>", section)
    assert items == [html.escape(a) for a in ADVICE]


def test_report_shows_transfer_helped_without_advice():
    base = baseline_section(
        {"accuracy": 0.9, "macro_f1": 0.9},
        {"accuracy": 0.6, "macro_f1": 0.6},
        strategy="finetune",
        epochs=3,
    )
    page = render_report(_metrics(accuracy=0.9, baseline=base))
    section = page.split('id="baseline"', 1)[1].split("</section>", 1)[0]
    assert 'class="verdict good"' in section
    assert "transfer helped by +30.0 points" in section
    assert "What to try:" not in section and "<li>" not in section


def _details(page: str) -> str:
    return (
        page.split('id="details"', 1)[1].split("</section>", 1)[0] if 'id="details"' in page else ""
    )


def test_details_leave_out_the_training_history_the_curves_show():
    page = render_report(_metrics(training=_training(best_epoch=2), hyperparameters={"lr": 1e-3}))
    assert 'id="training"' in page
    details = _details(page)
    assert "hyperparameters" in details  # what has no place of its own stays
    assert "history" not in details and "train_loss" not in details


def test_a_contrastive_run_has_a_section_with_its_loss_history_and_settings():
    contrastive = {
        "history": [
            {"epoch": 1, "loss": 2.0},
            {"epoch": 2, "loss": 1.6},
            {"epoch": 3, "loss": 1.5},
        ],
        "steps": 12,
        "seconds": 3.5,
        "cached_lower_layers": True,
        "pairs_per_epoch": 480,
    }
    settings = {"lr": 1e-4, "epochs": 3, "batch_size": 16, "loss": "supcon", "temperature": 0.1}
    page = render_report(
        _metrics(strategy="contrastive", contrastive=contrastive, hyperparameters=settings)
    )
    assert '<a href="#contrastive">Contrastive training</a>' in page
    section = page.split('id="contrastive"', 1)[1].split("</section>", 1)[0]
    (svg,) = _svgs(section)
    assert 'aria-label="pair loss per epoch"' in svg and svg.count("<circle") == 3
    for shown in ("pairs per epoch", "480", "supcon", "temperature", "batch_size"):
        assert shown in section
    details = _details(page)
    assert "pairs_per_epoch" not in details and "supcon" not in details
