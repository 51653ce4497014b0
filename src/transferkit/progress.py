"""How a run is shown: the subscribers to training events (see events.py).

- ``TerminalBars``: tqdm progress bars, for a person watching a terminal (or a notebook);
- ``LogLines``: one line when a counter closes — an encoding pass, an epoch — and nothing in
  between, for a log file (tqdm writes a carriage-return frame per update there);
- ``Recorder``: keeps the events, e.g. the epoch rows of a training history.

``as_events(progress)`` turns the ``progress`` setting of the estimator and the CLI into a sink:
``True`` shows bars when stderr is a terminal and log lines otherwise, ``False`` shows nothing.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from transferkit.events import NULL_EVENTS, Event, Events


class TerminalBars:
    """Draws every progress counter as a tqdm bar on ``stream`` (default: stderr)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._bars: dict[int, Any] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "warning":
            from tqdm.auto import tqdm

            tqdm.write(f"warning: {event.data.get('message', event.name)}", file=self._file())
        elif event.kind == "progress":
            self._progress(event)

    def _progress(self, event: Event) -> None:
        data = event.data
        state = data["state"]
        if state == "open":
            from tqdm.auto import tqdm

            self._bars[data["id"]] = tqdm(
                total=data["total"],
                initial=data["n"],
                desc=event.name,
                unit=data["unit"],
                file=self._file(),
                dynamic_ncols=True,
            )
            return
        bar = self._bars.get(data["id"])
        if bar is None:
            return
        if data["postfix"]:
            bar.set_postfix_str(_format_postfix(data["postfix"]), refresh=False)
        if state == "update":
            bar.update(data["advance"])
        else:
            self._bars.pop(data["id"]).close()

    def _file(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr


class LogLines:
    """One line per closed counter on ``stream``: "Epoch 2/5 stage 2 (1 groups): 4/4 batch,
    1.3 s, loss=0.512, val_acc=0.800"; warnings as "warning: ..."."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if event.kind == "warning":
            self._write(f"warning: {event.data.get('message', event.name)}")
        elif event.kind == "progress" and event.data["state"] == "close":
            self._write(progress_line(event))

    def _write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(line + "\n")
        stream.flush()


def progress_line(event: Event) -> str:
    """The log line of a closed progress counter."""
    data = event.data
    line = f"{event.name}: {data['n']}/{data['total']} {data['unit']}, {data['seconds']:.1f} s"
    postfix = _format_postfix(data["postfix"])
    return f"{line}, {postfix}" if postfix else line


def _format_postfix(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


class Recorder:
    """Keeps every event but progress counters (a bar's frames are not history)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        if event.kind != "progress":
            self.events.append(event)

    def history(self, stage: str) -> list[dict[str, Any]]:
        """The epoch rows of the last run of ``stage`` (e.g. "finetune"), in order."""
        rows: list[dict[str, Any]] = []
        for event in self.events:
            if event.name != stage:
                continue
            if event.kind == "stage" and event.data.get("state") == "start":
                rows = []
            elif event.kind == "epoch":
                rows.append(dict(event.data))
        return rows


def default_events(stream: IO[str] | None = None) -> Events:
    """Bars where a person watches (a terminal, a notebook), else one line per stage/epoch."""
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream) or _in_notebook():
        return Events([TerminalBars(stream)])
    return Events([LogLines(stream)])


def as_events(progress: bool | Events) -> Events:
    """The sink for a ``progress`` setting: an ``Events`` as given, True the default
    subscribers, False none."""
    if isinstance(progress, Events):
        return progress
    return default_events() if progress else NULL_EVENTS


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel, whose stderr is no terminal but shows bars
    (tqdm.auto draws them as widgets there), as tqdm.autonotebook decides."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
