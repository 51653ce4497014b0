"""Training events: the sink, progress counters, and what a fine-tuning run emits."""

from __future__ import annotations

import pytest

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
