"""Run the benchmarks and rewrite BENCHMARKS.md.

    python -m benchmarks                    # every benchmark, full size; rewrites BENCHMARKS.md
    python -m benchmarks --quick            # smoke run (~2 min); writes benchmarks/results/
                                            #   BENCHMARKS.quick.md (unless --md is given) and
                                            #   <name>.quick.json
    python -m benchmarks --only extraction  # one benchmark (repeat --only or use commas);
                                            #   the other sections of BENCHMARKS.md are kept
    python benchmarks/run_all.py ...        # same thing

Each benchmark is ``benchmarks/bench_<name>.py`` exposing ``run(quick: bool) -> dict`` with
``rows`` (metric, transferkit, reference, ratio, target, status), ``notes`` and raw ``data``;
register it in :data:`BENCHMARKS`. Raw results also go to ``benchmarks/results/<name>.json``.
Exit status: 0 when every benchmark ran (whatever its verdicts; ``--strict`` also fails on a
FAIL / NOT RUN verdict), 1 when a benchmark crashed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run_all.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as c  # noqa: E402

#: The registry: every benchmark that `python -m benchmarks` runs, in this order.
BENCHMARKS = [
    "extraction",
    "fashion_mnist",
    "cache",
    "finetune",
    "finetune_small",
    "image_suite",
    "text",
    "text_chinese",
    "text_auto",
    "auto_budget",
    "text_e5",
    "ranking",
    "audio",
    "ray",
    "runtime_size",
    "export",
    "serve",
    "adapt",
    "foreign",
    "adapter_memory",
    "adapter",
    "studio",
]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MARKDOWN = c.REPO_ROOT / "BENCHMARKS.md"
QUICK_MARKDOWN = RESULTS_DIR / "BENCHMARKS.quick.md"
COLUMNS = ["metric", "transferkit", "reference", "ratio", "target", "status"]
HEADERS = ["metric", "transferkit", "reference(s)", "ratio", "target", "result"]

_BEGIN = "<!-- bench:{name}:begin -->"
_END = "<!-- bench:{name}:end -->"
_SECTION_RE = re.compile(
    r"<!-- bench:(?P<name>[A-Za-z0-9_]+):begin -->\n(?P<body>.*?)<!-- bench:(?P=name):end -->",
    re.S,
)


# ----------------------------------------------------------------------------- run metadata


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_info() -> dict:
    return {
        "cpu": _cpu_model(),
        "nproc": _nproc(),
        "cpu_count": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "platform": platform.platform(),
    }


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for key, dist in [
        ("torch", "torch"),
        ("torchvision", "torchvision"),
        ("onnxruntime", "onnxruntime"),
        ("onnx", "onnx"),
        ("scikit-learn", "scikit-learn"),
        ("numpy", "numpy"),
        ("pillow", "pillow"),
    ]:
        versions[key] = _version(dist)
    c.use_repo_transferkit()
    try:
        import transferkit

        versions["transferkit"] = f"{transferkit.__version__} (src checkout)"
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        versions["transferkit"] = f"not importable ({type(exc).__name__})"
    return versions


def command_line() -> str:
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    exe = Path(argv[0])
    try:
        argv[0] = str(exe.absolute().relative_to(Path.cwd()))
    except ValueError:
        pass
    return shlex.join(argv)


# ----------------------------------------------------------------------------- markdown


def _cell(value) -> str:
    text = "—" if value is None or value == "" else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def render_section(result: dict) -> str:
    meta = result["meta"]
    name = result["name"]
    lines = [f"## {result.get('title', name)}", ""]
    quick = " — **quick (smoke) run**" if meta["quick"] else ""
    lines.append(f"`benchmarks/bench_{name}.py`{quick}")
    lines.append("")
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    for row in result.get("rows", []):
        lines.append("| " + " | ".join(_cell(row.get(col)) for col in COLUMNS) + " |")
    lines.append("")
    # a bench may add tables of its own (e.g. one per strategy), each under a bold title
    for table in result.get("tables", []):
        lines += [f"**{table['title']}**", ""]
        lines.append("| " + " | ".join(_cell(h) for h in table["headers"]) + " |")
        lines.append("|" + "---|" * len(table["headers"]))
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table["rows"]]
        lines.append("")
    for note in result.get("notes", []):
        lines.append(f"- {' '.join(str(note).split())}")
    if result.get("notes"):
        lines.append("")
    m, v = meta["machine"], meta["versions"]
    ram = f"{m['ram_gib']:.1f} GiB RAM" if m.get("ram_gib") else "RAM unknown"
    mode = "quick" if meta["quick"] else "full"
    lines += [
        f"Measured {meta['date']} in {meta['seconds']:.0f} s ({mode} run) on {m['cpu']}, "
        f"{m['nproc']} cores, {ram}, {m['platform']}; load average "
        f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end.  ",
        *(
            [
                "**Other processes were using the CPUs when this started (load average >= 1), so "
                "absolute numbers are lower and noisier than on an idle machine; the ratios "
                "compare sides measured under the same load.**  "
            ]
            if _busy(meta["loadavg_start"])
            else []
        ),
        f"Command: `{meta['command']}`  ",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
    ]
    return "\n".join(lines)


def _busy(loadavg: str) -> bool:
    try:
        return float(loadavg.split()[0]) >= 1.0
    except (ValueError, IndexError):
        return False


def _header() -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Generated by `python -m benchmarks` (what `make bench` runs): do not edit by hand, "
            "re-run instead. Each benchmark runs transferkit and its references side by side in "
            "the same run and reports ratios; each section says when, where and with which "
            "command it was measured. `python -m benchmarks --only NAME` rewrites only that "
            "section. Raw numbers: `benchmarks/results/<name>.json` (not committed).",
            "",
            "Result column: PASS / FAIL against the target; NOT RUN when the transferkit side "
            "is not available in this checkout; ERROR when it crashed; info for context rows.",
            "",
        ]
    )


def update_markdown(path: Path, results: dict[str, dict]) -> None:
    old = path.read_text() if path.is_file() else ""
    sections = {m["name"]: m["body"] for m in _SECTION_RE.finditer(old)}
    for name, result in results.items():
        sections[name] = render_section(result)
    order = BENCHMARKS + [n for n in sections if n not in BENCHMARKS]
    parts = [_header()]
    for name in order:
        body = sections.get(name)
        if body is None:
            body = f"## {name}\n\nNot run yet: `python -m benchmarks --only {name}`.\n"
        parts += [_BEGIN.format(name=name), body.rstrip("\n") + "\n", _END.format(name=name), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- running


def _error_result(name: str, title: str, exc: BaseException) -> dict:
    return {
        "name": name,
        "title": title,
        "rows": [c.row("benchmark crashed", c.short_error(exc), status="ERROR")],
        "notes": [f"crashed: {c.short_error(exc, 1000)}"],
        "data": {"traceback": traceback.format_exc()},
        "crashed": True,
    }


def _print_table(result: dict) -> None:
    rows = [HEADERS] + [[_cell(r.get(col)) for col in COLUMNS] for r in result.get("rows", [])]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(len(HEADERS))]
    print(f"\n== {result.get('title', result['name'])}", flush=True)
    for r in rows:
        print("  ".join(cell[:60].ljust(w) for cell, w in zip(r, widths, strict=True)), flush=True)
    for note in result.get("notes", []):
        print(f"  - {note}", flush=True)


def run_benchmark(name: str, quick: bool, command: str, machine: dict, versions: dict) -> dict:
    load_start = _loadavg()
    t0 = time.perf_counter()
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = name
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        title = getattr(module, "TITLE", name)
        result = module.run(quick)
        result.setdefault("name", name)
        result.setdefault("title", title)
    except Exception as exc:  # one crashed benchmark must not take the others down
        result = _error_result(name, title, exc)
        print(result["data"]["traceback"], file=sys.stderr, flush=True)
    result["meta"] = {
        "date": date,
        "quick": quick,
        "seconds": time.perf_counter() - t0,
        "command": command,
        "machine": machine,
        "versions": versions,
        "loadavg_start": load_start,
        "loadavg_end": _loadavg(),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / (f"{name}.quick.json" if quick else f"{name}.json")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, out)
    return result


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run transferkit's benchmarks."
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (about 2 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these benchmarks (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--md",
        type=Path,
        help=f"markdown file to update (default: {MARKDOWN.name}; {QUICK_MARKDOWN} with --quick)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 also when a verdict is FAIL or NOT RUN"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = BENCHMARKS
    if args.only:
        names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            print(
                f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
                file=sys.stderr,
            )
            return 2
    md_path = args.md or (QUICK_MARKDOWN if args.quick else MARKDOWN)

    command = command_line()
    machine = machine_info()
    versions = library_versions()
    print(
        f"benchmarks: {', '.join(names)} ({'quick' if args.quick else 'full'}) on "
        f"{machine['cpu']}, {machine['nproc']} cores",
        flush=True,
    )
    results = {}
    t0 = time.perf_counter()
    for name in names:
        print(f"\n-- running {name} ...", flush=True)
        results[name] = run_benchmark(name, args.quick, command, machine, versions)
        _print_table(results[name])
        # rewrite after each benchmark so a later crash or Ctrl-C keeps what was measured
        update_markdown(md_path, {n: results[n] for n in results})
    print(f"\nwrote {md_path} and {RESULTS_DIR}/ in {time.perf_counter() - t0:.0f} s")

    if any(r.get("crashed") for r in results.values()):
        return 1
    if args.strict:
        statuses = {row.get("status") for r in results.values() for row in r.get("rows", [])}
        if statuses & {"FAIL", "NOT RUN", "ERROR"}:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
