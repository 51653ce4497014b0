"""Training events: the sink, progress counters, and what a fine-tuning run emits."""

from __future__ import annotations

import pytest
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.events import NULL_EVENTS, Event, Events


def test_every_subscriber_gets_every_event_in_order():
    seen_a, seen_b = [], []
    events = Events([seen_a.append, seen_b.append])
    first, second = Event("stage", "encode", {"state": "start"}), Event("metric", "lr", {})
    events.emit(first)
    events.emit(second)
    assert seen_a == seen_b == [first, second]


def test_an_unknown_kind_is_refused_with_the_kinds_there_are():
    with pytest.raises(ValueError, match="epoch.*got 'epochs'"):
        Event("epochs", "finetune")


def test_a_progress_counter_opens_updates_and_closes_once():
    seen = []
    with Events([seen.append]).progress(10, "Encoding (tiny)", "img", initial=4) as bar:
        bar.update(3)
        bar.update(3, loss=0.5)
        bar.update(0, val_acc=0.75)
    bar.close()  # closing twice says it once
    states = [(e.data["state"], e.data["n"]) for e in seen]
    assert states == [("open", 4), ("update", 7), ("update", 10), ("update", 10), ("close", 10)]
    assert {e.kind for e in seen} == {"progress"}
    assert {e.name for e in seen} == {"Encoding (tiny)"}
    assert {e.data["id"] for e in seen} == {id(bar)}
    close = seen[-1].data
    assert close["total"] == 10 and close["unit"] == "img" and close["seconds"] >= 0
    assert close["postfix"] == {"loss": 0.5, "val_acc": 0.75}


def test_the_null_sink_shows_and_keeps_nothing():
    assert NULL_EVENTS.subscribers == ()
    bar = NULL_EVENTS.progress(3, "Epoch 1/1", "batch")
    bar.update(3, loss=1.0)
    bar.close()
    NULL_EVENTS.emit(Event("epoch", "finetune", {"epoch": 1}))


def test_a_finetuning_run_tells_its_stage_and_epochs_in_order(tmp_path):
    from conftest import make_shapes_folder

    from transferkit import TransferClassifier, load_dataset
    from transferkit.progress import Recorder

    train, val, _ = load_dataset(make_shapes_folder(tmp_path / "shapes", per_class=8)).split(
        test_size=0.0, val_size=0.25, seed=0
    )
    recorder = Recorder()
    clf = TransferClassifier(
        backbone=NAME,
        weights=write_tiny_weights(tmp_path / "tiny.safetensors"),
        strategy="finetune",
        strategy_params={"epochs": 2, "lr": 1e-3, "batch_size": 8},
        progress=Events([recorder]),
        runtime="torch",
        cache=False,
    ).fit(train, val=val)
    said = [
        (e.kind, e.data["state"] if e.kind == "stage" else e.data["epoch"])
        for e in recorder.events
        if e.kind in ("stage", "epoch")
    ]
    assert said == [("stage", "start"), ("epoch", 0), ("epoch", 1), ("epoch", 2), ("stage", "end")]
    assert {e.name for e in recorder.events} == {"finetune"}
    history = clf.fit_info_["training"]["history"]
    assert recorder.history("finetune") == history
    # 6 images a class: epoch 0 is the frozen-features probe stage 2 starts from
    assert [r["stage"] for r in history] == ["probe", "unfreeze:1", "unfreeze:2"]
    assert history[0]["val_accuracy"] is not None  # measured on the split as every epoch is
    assert all(r["val_accuracy"] is not None and r["train_loss"] > 0 for r in history)
    # each epoch's steps come between the previous epoch's row and its own
    order = [(e.kind, e.data["epoch"]) for e in recorder.events if e.kind in ("step", "epoch")]
    per_epoch = order.index(("epoch", 1)) - 1
    assert per_epoch >= 1
    first, second = [("step", 1)] * per_epoch, [("step", 2)] * per_epoch
    assert order == [("epoch", 0), *first, ("epoch", 1), *second, ("epoch", 2)]
    end = recorder.events[-1].data
    assert end["best_epoch"] == clf.fit_info_["training"]["best_epoch"]
