"""The run folder (``train --out RUN``): checked before training, its results swapped in whole.

What a run writes at its end, ``model/``, ``metrics.json`` and ``report.html``, must never be
seen half old and half new: ``evaluate RUN/model``, a script reading ``metrics.json`` and a
browser opening ``report.html`` must all see the same run. No renames inside RUN change three
names at once, so the whole folder is swapped:

- the results are written into a copy of RUN made beside it (``.RUN.PID-xxxxxxxx.tmp``), which
  starts as hard links to everything RUN holds besides the results: the user's own files, and
  the resume files (``checkpoint.safetensors``, ``run.json``) of this run;
- once complete it is synced, renamed ``.RUN.ready-PID`` and exchanged with RUN in one
  renameat2(RENAME_EXCHANGE) on Linux: at every instant RUN is the whole old folder or the
  whole new one. Elsewhere RUN is moved aside and the new one moved in; a kill between the two
  leaves no RUN until the next ``train``, ``evaluate`` or ``predict`` moves the complete new one
  in (see ``transferkit.atomic``);
- the resume files are written into RUN itself while a finetune/scratch run trains, since
  ``--resume`` after a kill needs them there: they always belong to the latest run that trains
  the backbone, finished or not. A run that writes none (features, contrastive) drops an
  earlier run's, which would resume a run whose results are gone.

The price: RUN's parent must be writable and RUN cannot be a mount point (it cannot be
renamed); both are refused before training, with the fix. RUN is a new folder after each run,
so a shell whose current folder is RUN still sees the old one until ``cd .``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transferkit.atomic import atomic_directory, recover
from transferkit.errors import BadInputError
from transferkit.run_settings import RUN_SETTINGS

log = logging.getLogger("transferkit")

RESULTS = ("model", "metrics.json", "report.html")
# the fine-tuning engine's checkpoint (finetune.engine.CHECKPOINT_NAME, which imports torch)
RESUME_FILES = ("checkpoint.safetensors", RUN_SETTINGS)


def recover_run_folder(out: str | Path) -> None:
    """Finish or undo what a kill interrupted: a swap of RUN, or a file write inside it."""
    real = Path(os.path.realpath(out))
    try:
        recover(real)
        if real.is_dir():
            # inside RUN: temporaries of the resume files, and what versions before the
            # whole-folder swap left beside the results (issue 16: .model.old-PID, no model/)
            for name in RESULTS + RESUME_FILES:
                recover(real / name)
    except OSError as exc:
        raise BadInputError(
            f"--out {out}: an interrupted run left files that cannot be cleaned up ({exc}); "
            "fix the folder's permissions or choose another --out"
        ) from None


def recover_before_reading(model: str | Path) -> None:
    """Before reading ``RUN/model``: finish a swap a kill interrupted, if any (best effort)."""
    model = Path(model)
    try:
        recover(Path(os.path.realpath(model.parent)))
        recover(model)
    except OSError as exc:  # a reader may lack the right to write: it reads what is there
        log.warning("%s: could not finish an interrupted write (%s)", model, exc)


def _first_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder: Path, out: str | Path) -> None:
    """Really create and remove a file in ``folder`` (permission bits do not stop root)."""
    if not folder.is_dir():
        raise BadInputError(
            f"--out {out}: {folder} is a file, not a folder, so the run cannot be written "
            "under it. Choose another --out."
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".transferkit-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInputError(
            f"--out {out}: cannot write in {folder} ({exc.strerror or exc}). Choose a folder "
            "you can write to (or make this one writable); nothing was trained."
        ) from None


def prepare_run_folder(out: str | Path) -> None:
    """Before training: recover what a kill left in RUN and check the run can be written."""
    real = Path(os.path.realpath(out))
    if real.exists() and not real.is_dir():
        raise BadInputError(f"--out {out} is an existing file; give a directory for the run")
    if real.is_dir() and os.path.ismount(real):
        raise BadInputError(
            f"--out {out} is a mount point. A run is written beside its folder and swapped in "
            f"whole, and a mount point cannot be swapped: use a folder inside it, e.g. "
            f"--out {Path(out) / 'run'}"
        )
    recover_run_folder(out)
    # the finished run is written beside RUN, a finetune run's checkpoints into RUN
    _check_writable(_first_existing(real.parent), out)
    if real.is_dir():
        _check_writable(real, out)


def _holds_cwd(folder: Path) -> bool:
    try:
        cwd = Path.cwd()
    except OSError:
        return False
    return cwd == folder or folder in cwd.parents


def _reason(exc: Exception) -> str:
    if not isinstance(exc, OSError):
        return str(exc)
    return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")


@contextmanager
def publish_run(out: str | Path, *, keep_resume: bool) -> Iterator[Path]:
    """Yield a folder to write the run's results into; it becomes RUN in one step at the end.

    ``keep_resume``: this run wrote RUN's checkpoint and run.json (it trains the backbone).
    An error while writing (disk full, permissions) becomes a BadInputError naming RUN, which
    still holds the previous run.
    """
    from safetensors import SafetensorError

    real = Path(os.path.realpath(out))

    def carried(name: str) -> bool:
        return name not in RESULTS and (keep_resume or name not in RESUME_FILES)

    inside = _holds_cwd(real)
    try:
        with atomic_directory(real, carry=carried, label="run") as staging:
            yield staging
    except (OSError, SafetensorError) as exc:
        if not isinstance(exc, OSError) and "I/O error" not in str(exc):
            raise  # a tensor safetensors refuses: a bug, not the disk
        raise BadInputError(
            f"could not write the results of this run into {out}: {_reason(exc)}. {out} still "
            "holds what it held before this run; free some space or fix the permissions and "
            "train again"
        ) from exc
    if inside:
        log.warning("%s was replaced by the new run: a shell inside it needs `cd .` to see it", out)
