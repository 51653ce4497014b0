"""The subscribers that show a run: terminal bars, log lines, the recorder, the default choice."""

from __future__ import annotations

import io

from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.events import NULL_EVENTS, Event, Events
from transferkit.progress import LogLines, Recorder, TerminalBars, as_events, default_events


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _epoch(events: Events, epoch: int, loss: float) -> None:
    bar = events.progress(4, f"Epoch {epoch}/2 stage 2 (1 groups)", "batch")
    for _ in range(4):
        bar.update(1, loss=loss)
    bar.update(0, val_acc=0.75)
    bar.close()


def test_log_lines_write_one_line_per_closed_counter_and_no_frames():
    stream = io.StringIO()
    events = Events([LogLines(stream)])
    _epoch(events, 1, 0.51234)
    _epoch(events, 2, 0.25)
    events.emit(Event("epoch", "finetune", {"epoch": 2}))  # data for others: no line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 stage 2 (1 groups): 4/4 batch, ")
    assert lines[0].endswith(" s, loss=0.5123, val_acc=0.75")
    assert "\r" not in stream.getvalue()


def test_terminal_bars_draw_frames_and_leave_each_bar():
    stream = _Terminal()
    _epoch(Events([TerminalBars(stream)]), 1, 0.5)
    text = stream.getvalue()
    assert "\r" in text
    assert "Epoch 1/2 stage 2 (1 groups): 100%" in text and "4/4" in text
    assert "loss=0.5, val_acc=0.75" in text


def test_warnings_are_shown_by_both():
    for make in (LogLines, TerminalBars):
        stream = io.StringIO()
        Events([make(stream)]).emit(Event("warning", "batch size", {"message": "too big"}))
        assert stream.getvalue() == "warning: too big\n"


def test_the_recorder_keeps_the_last_run_of_a_stage_and_no_frames():
    recorder = Recorder()
    events = Events([recorder])
    for run in (1, 2):
        events.emit(Event("stage", "finetune", {"state": "start"}))
        _epoch(events, 1, 0.5)
        events.emit(Event("epoch", "finetune", {"epoch": 1, "run": run}))
        events.emit(Event("epoch", "contrastive", {"epoch": 1}))
        events.emit(Event("stage", "finetune", {"state": "end"}))
    assert recorder.history("finetune") == [{"epoch": 1, "run": 2}]
    assert all(e.kind != "progress" for e in recorder.events)


def test_bars_for_a_terminal_lines_for_anything_else():
    (bars,) = default_events(_Terminal()).subscribers
    (lines,) = default_events(io.StringIO()).subscribers
    assert isinstance(bars, TerminalBars) and isinstance(lines, LogLines)


def test_the_progress_setting_as_a_sink(capsys):
    events = Events([Recorder()])
    assert as_events(events) is events
    assert as_events(False) is NULL_EVENTS
    # True: the default for the stderr of the moment (captured here: not a terminal)
    (shown,) = as_events(True).subscribers
    assert isinstance(shown, LogLines)


def test_only_the_top_layers_print_and_only_progress_draws_bars():
    """Below ``training`` code emits events: no ``print``, no writes to sys.stdout/stderr, and
    tqdm is imported by progress.py alone."""
    import ast
    from pathlib import Path

    import transferkit

    package = Path(transferkit.__file__).parent
    # the CLI, and the commands of the layers beside it (export, serve, Ray, gap) that print their
    # one JSON result line, and the studio's, which prints its address; the Keras converter runs
    # as its own process, whose stdout line is its answer to the parent
    may_print = {
        "cli.py", "progress.py", "export/cli.py", "scale/cli.py", "serve/cli.py",
        "domain_gap/cli.py", "studio/cli.py", "backbones/foreign/keras_worker.py",
    }  # fmt: skip
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=name)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                modules += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(m.split(".")[0] == "tqdm" for m in modules) and name != "progress.py":
                    found.append(f"{name}:{node.lineno} imports tqdm")
            elif name not in may_print and isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id == "print":
                    found.append(f"{name}:{node.lineno} calls print")
            elif name not in may_print and isinstance(node, ast.Attribute):
                if node.attr in ("stdout", "stderr") and getattr(node.value, "id", "") == "sys":
                    found.append(f"{name}:{node.lineno} uses sys.{node.attr}")
    assert not found, found


def test_the_recorders_history_is_the_training_history_of_metrics_json(tmp_path):
    import json

    from conftest import make_shapes_folder

    from transferkit.training import train_run

    recorder = Recorder()
    train_run(
        make_shapes_folder(tmp_path / "shapes", per_class=8),
        tmp_path / "run",
        backbone=NAME,
        weights=write_tiny_weights(tmp_path / "tiny.safetensors"),
        strategy="finetune",
        strategy_params={"epochs": 2, "lr": 1e-3},
        progress=Events([recorder]),
        runtime="torch",
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["training"]["history"]) == 3  # the head warm-up, then 2 epochs
    assert recorder.history("finetune") == metrics["training"]["history"]
