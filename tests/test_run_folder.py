"""The run folder of ``transferkit train``: checked before training, and after a kill at any write
step it holds the old run or the new one, never a mix, and the next start cleans up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_backbone import NAME, register_tiny, write_tiny_weights

from transferkit.cli import main
from transferkit.errors import BadInputError
from transferkit.run_folder import RESUME_FILES, prepare_run_folder, publish_run

TESTS = Path(__file__).resolve().parent
CHILD = """
import sys
sys.path.insert(0, {tests!r})
from tiny_backbone import register_tiny
register_tiny()
import transferkit.atomic as atomic
if {portable!r}:
    atomic.exchange = lambda a, b: False  # the two-rename swap used where there is no exchange
if {trace!r}:
    reached = atomic.fault_point
    def fault_point(step):
        with open({trace!r}, "a") as fh:
            fh.write(step + "\\n")
        reached(step)
    atomic.fault_point = fault_point
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""

# every write step at the end of a features run, in order (test_every_write_step_is_tested
# checks this list against the steps a real run reaches)
END_STEPS = [
    "manifest.json:renaming",
    "model:staged",
    "model:ready",
    "model:swapped",
    "metrics.json:renaming",
    "report.html:renaming",
    "run:staged",
    "run:ready",
    "run:swapped",
]
# where there is no atomic exchange, RUN is swapped by two renames
PORTABLE_STEPS = ["run:ready", "run:moved-aside", "run:swapped"]
# the run a folder killed at each step holds (once recovered): B only once B is complete
AFTER = {step: "A" for step in END_STEPS} | {"run:moved-aside": "B", "run:swapped": "B"}


class World:
    """Data A and B (the same images, other class names), weights, a cache, and run A."""

    def __init__(self, root: Path) -> None:
        from conftest import make_shapes_folder

        self.root = root
        self.data = {"A": make_shapes_folder(root / "dataA", per_class=6)}
        self.data["B"] = root / "dataB"
        for folder in self.data["A"].iterdir():
            shutil.copytree(folder, self.data["B"] / f"b_{folder.name}")
        self.weights = write_tiny_weights(root / "tiny.safetensors")
        self.env = {**os.environ, "TRANSFERKIT_CACHE_DIR": str(root / "cache")}
        self.env.pop("TRANSFERKIT_FAULT_AT", None)

    def train_args(self, which: str, out: Path) -> list[str]:
        return [
            "-q", "train", self.data[which], "--out", out, "--backbone", NAME,
            "--weights", self.weights, "--strategy", "features", "--head", "centroid",
            "--no-learning-curve", "--no-progress", "--runtime", "torch",
        ]  # fmt: skip

    def cli(self, args, *, fault=None, portable=False, trace=None):
        child = CHILD.format(tests=str(TESTS), portable=portable, trace=str(trace or ""))
        env = dict(self.env, **({"TRANSFERKIT_FAULT_AT": fault} if fault else {}))
        cmd = [sys.executable, "-c", child, *map(str, args)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Run A done once (its trace of write steps kept); each test copies it."""
    world = World(tmp_path_factory.mktemp("runs"))
    world.template = world.root / "template" / "run"
    world.trace = world.root / "trace.txt"
    done = world.cli(world.train_args("A", world.template), trace=world.trace)
    assert done.returncode == 0, done.stderr
    (world.template / "notes.txt").write_text("the user's own notes")
    return world


def _which_run(run: Path) -> str:
    """'A' or 'B' when the model, metrics.json and report.html all come from that run."""
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    html = (run / "report.html").read_text()
    assert ("b_circle" in html) == ("dataB" in html)  # the report's labels and title agree
    seen = {
        "model": "B" if manifest["labels"][0].startswith("b_") else "A",
        "metrics": "B" if metrics["labels"][0].startswith("b_") else "A",
        "report": "B" if "b_circle" in html else "A",
    }
    return seen["model"] if len(set(seen.values())) == 1 else f"mixed {seen}"


def _copy_of_run_a(world, tmp_path) -> Path:
    run = tmp_path / "runs" / "run"
    shutil.copytree(world.template, run)
    return run


def _check_clean(run: Path) -> None:
    """Nothing of an interrupted write is left, and the user's file is still there."""
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]
    assert sorted(p.name for p in run.iterdir()) == [
        "metrics.json",
        "model",
        "notes.txt",
        "report.html",
    ]
    assert (run / "notes.txt").read_text() == "the user's own notes"


def test_every_write_step_is_tested(world):
    assert world.trace.read_text().split() == END_STEPS


def _kill_then_recover(world, tmp_path, monkeypatch, step, *, portable):
    run = _copy_of_run_a(world, tmp_path)
    killed = world.cli(world.train_args("B", run), fault=step, portable=portable)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if run.exists():
        assert _which_run(run) == AFTER[step]
    else:  # only between the two renames of the portable swap
        assert portable and step == "run:moved-aside"

    register_tiny()
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", world.env["TRANSFERKIT_CACHE_DIR"])
    which = AFTER[step]
    evaluate = ["-q", "evaluate", run / "model", world.data[which], "--weights", world.weights]
    assert main([*map(str, evaluate), "--no-progress"]) == 0  # it finished what the kill left
    assert _which_run(run) == which
    _check_clean(run)
    args = [str(a) for a in world.train_args("B", run)]
    assert main(args) == 0
    assert _which_run(run) == "B"
    _check_clean(run)


@pytest.mark.parametrize("step", END_STEPS)
def test_a_kill_at_any_write_step_leaves_the_old_run_or_the_new(world, tmp_path, monkeypatch, step):
    _kill_then_recover(world, tmp_path, monkeypatch, step, portable=False)


@pytest.mark.parametrize("step", PORTABLE_STEPS)
def test_a_kill_during_the_portable_swap_is_recovered(world, tmp_path, monkeypatch, step):
    _kill_then_recover(world, tmp_path, monkeypatch, step, portable=True)


# -- item 2: a run that cannot be written is refused before training ---------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything gets as far as training."""
    from transferkit.estimator import TransferClassifier

    def fit(*args, **kwargs):
        raise AssertionError("trained before finding that --out cannot be written")

    monkeypatch.setattr(TransferClassifier, "fit", fit)


def test_out_under_a_file_is_refused_before_training(capsys, tmp_path, shapes, no_training):
    """As root no permission bit stops a write; a parent that is a file stops everyone."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    code = main(["train", str(shapes), "--out", str(blocker / "runs" / "first")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{blocker} is a file, not a folder" in err and "Choose another --out" in err
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_out_is_refused_before_training(capsys, tmp_path, shapes, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code = main(["train", str(shapes), "--out", str(locked / "run")])
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write in {locked}" in err and "Permission denied" in err
    assert os.listdir(locked) == []


def _user_namespaces() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _user_namespaces(), reason="needs `unshare -rm` for a private mount")
def test_out_on_a_read_only_file_system_is_refused_before_training(world, tmp_path):
    """A real read-only mount (made in a private mount namespace) stops root too."""
    mount = tmp_path / "readonly"
    mount.mkdir()
    child = CHILD.format(tests=str(TESTS), portable=False, trace="")
    script = f'mount -t tmpfs -o ro tmpfs {mount} && exec "$@"'
    args = world.train_args("A", mount / "run")
    cmd = ["unshare", "-rm", "sh", "-c", script, "sh", sys.executable, "-c", child, *args]
    done = subprocess.run(
        [str(a) for a in cmd], env=world.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot write in {mount} (Read-only file system)" in done.stderr
    assert "nothing was trained" in done.stderr


def test_a_mount_point_is_refused_with_the_fix():
    root = Path(Path.cwd().anchor)  # a mount point on every system
    with pytest.raises(BadInputError, match="mount point.*use a folder inside it"):
        prepare_run_folder(root)


def test_the_write_check_leaves_nothing_behind(tmp_path):
    (tmp_path / "run").mkdir()
    prepare_run_folder(tmp_path / "run")
    prepare_run_folder(tmp_path / "new" / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert os.listdir(tmp_path / "run") == []


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (8000, 8000))
exec(sys.argv.pop(1))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_full_disk_while_writing_the_results_keeps_the_old_run(world, tmp_path):
    """A file-size limit makes the 18 kB report fail as a full disk would: exit 2, run A kept."""
    run = _copy_of_run_a(world, tmp_path)
    child = CHILD.format(tests=str(TESTS), portable=False, trace="")
    args = [*world.train_args("B", run), "--no-cache"]
    cmd = [sys.executable, "-c", FULL_DISK, child, *map(str, args)]
    done = subprocess.run(cmd, env=world.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"could not write the results of this run into {run}: File too large" in done.stderr
    assert _which_run(run) == "A"
    _check_clean(run)


def test_a_full_disk_while_writing_tensors_is_bad_input_too(tmp_path):
    script = (
        "import numpy as np\n"
        "from safetensors.numpy import save_file\n"
        "from transferkit.run_folder import publish_run\n"
        f"with publish_run({str(tmp_path / 'run')!r}, keep_resume=False) as new:\n"
        "    save_file({'w': np.zeros(4096, dtype=np.float32)}, new / 'head.safetensors')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, script], capture_output=True, text=True, timeout=60
    )
    assert "BadInputError: could not write the results" in done.stderr
    assert "File too large" in done.stderr
    assert os.listdir(tmp_path) == []


# -- what a run carries over from the folder it replaces -------------------------------------


def _old_run(root: Path) -> Path:
    run = root / "run"
    (run / "model").mkdir(parents=True)
    for name in ("metrics.json", "report.html", "checkpoint.safetensors", "run.json", "notes.txt"):
        (run / name).write_text(f"old {name}")
    return run


@pytest.mark.parametrize("keep_resume", [True, False])
def test_publish_keeps_the_users_files_and_only_this_runs_resume_files(tmp_path, keep_resume):
    run = _old_run(tmp_path)
    with publish_run(run, keep_resume=keep_resume) as new:
        (new / "model").mkdir()
        (new / "metrics.json").write_text("new")
        (new / "report.html").write_text("new")
    kept = ["checkpoint.safetensors", "run.json"] if keep_resume else []
    expected = sorted(["metrics.json", "model", "notes.txt", "report.html", *kept])
    assert sorted(os.listdir(run)) == expected
    assert (run / "metrics.json").read_text() == "new"
    assert (run / "notes.txt").read_text() == "old notes.txt"
    assert os.listdir(tmp_path) == ["run"]


def test_the_resume_files_are_the_ones_the_engine_writes():
    from transferkit.finetune.engine import CHECKPOINT_NAME

    assert CHECKPOINT_NAME in RESUME_FILES


def test_a_shell_inside_the_run_folder_is_told_to_cd(tmp_path, monkeypatch, caplog):
    run = _old_run(tmp_path)
    monkeypatch.chdir(run)
    with publish_run(".", keep_resume=False) as new:
        (new / "metrics.json").write_text("new")
    assert "`cd .`" in caplog.text
    assert (tmp_path / "run" / "metrics.json").read_text() == "new"


def test_resume_finds_its_run_after_a_kill_between_the_two_renames(capsys, tmp_path, shapes):
    """The portable swap left no RUN, only its complete new version: --resume puts it back."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ready = tmp_path / f".run.ready-{gone.pid}"
    ready.mkdir()
    (ready / "run.json").write_text(json.dumps({"strategy": "features"}))
    code = main(["train", str(shapes), "--resume", str(tmp_path / "run")])
    err = capsys.readouterr().err
    # past "there is no run.json": the run was found, and its strategy has nothing to resume
    assert code == 2 and "the features strategy has no epochs to resume" in err, err
    assert sorted(os.listdir(tmp_path)) == ["run", "shapes"]


def test_the_run_folder_an_older_version_left_is_recovered_before_training(tmp_path):
    """Issue 16's state after a kill between the two renames of the old model/ swap."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = _old_run(tmp_path)
    (run / "model").rename(run / f".model.old-{gone.pid}")
    (run / ".model.x1_9zk2q.tmp").mkdir()
    (run / f".checkpoint.safetensors.{gone.pid}-abcdefgh.tmp").write_text("half")
    prepare_run_folder(run)
    assert sorted(os.listdir(run)) == sorted(
        ["model", "metrics.json", "report.html", "checkpoint.safetensors", "run.json", "notes.txt"]
    )
