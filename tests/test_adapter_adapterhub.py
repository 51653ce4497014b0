"""AdapterHub's adapter folders, checked with AdapterHub's own library: adapters it saved
(Pfeiffer, Houlsby, LoRA) are read into the packaged all-MiniLM encoder and give its outputs;
ours, written in its form, are loaded by its ``load_adapter`` and give ours.

``adapters`` 1.3.0 pins transformers 4.57, which cannot live beside the project's transformers
5: it runs in a subprocess (tests/adapterhub_runner.py) from a ``pip install --target`` folder
outside the repository, installed here on first use (then cached).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_offline_weights

from transferkit.backbones import resolve_backbone
from transferkit.errors import BadInputError
from transferkit.finetune.adapters import AdapterSpec, adapter_state, inject
from transferkit.finetune.adapters.adapterhub_folder import write_adapterhub_dir
from transferkit.finetune.adapters.interop import attach, check_base, hub_name, read_adapter_dir

TEXTS = ["a wonderful, moving film", "dull and far too long", "the cast is superb"]
# adapters 1.3.0 and what it needs that the project's environment holds in other versions
PINS = ("adapters==1.3.0", "transformers==4.57.6", "tokenizers==0.22.1", "huggingface_hub==0.36.0")
RUNNER = Path(__file__).with_name("adapterhub_runner.py")
# AdapterHub's names of the three configurations and the method each is for us
THEIRS = {"pf": ("seq_bn", "pfeiffer"), "hb": ("double_seq_bn", "houlsby"), "lo": ("lora", "lora")}


def _install_dir() -> Path:
    """adapters 1.3.0 + transformers 4.57.6 in a --target folder, installed once per machine."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "transferkit"
    target = root / "test-adapterhub"
    marker = target / "transferkit-pins.json"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "test-adapterhub.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing it
        if marker.is_file() and json.loads(marker.read_text()) == list(PINS):
            return target
        staging = Path(tempfile.mkdtemp(prefix="test-adapterhub-", dir=root))
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
            + ["--target", str(staging), *PINS],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            message = f"cannot pip install {' '.join(PINS)}: {done.stderr[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        (staging / marker.name).write_text(json.dumps(list(PINS)))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def _adapterhub(
    action: str, model_dir: Path, work: Path, jobs: list[dict]
) -> dict[str, np.ndarray]:
    """Run their library on ``jobs``; the token states each job's adapter gives."""
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": str(_install_dir()), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(RUNNER), action, str(model_dir), str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {job["name"]: np.load(work / f"{job['name']}.npy") for job in jobs}


@pytest.fixture(scope="module")
def ref():
    require_offline_weights("all_minilm_l6_v2")
    return resolve_backbone("all_minilm_l6_v2", allow_download=False)


def _fresh(ref):
    import dataclasses

    return dataclasses.replace(ref, _module=None).materialize().eval()


@pytest.fixture(scope="module")
def work(ref, tmp_path_factory):
    """A folder with the tokenized texts, as both libraries read them."""
    folder = tmp_path_factory.mktemp("adapterhub")
    batch = _fresh(ref).tokenize(TEXTS)
    np.savez(folder / "batch.npz", **{k: v.numpy() for k, v in batch.items()})
    return folder


def _ours(module, batch_file: Path):
    batch = {k: torch.from_numpy(v) for k, v in np.load(batch_file).items()}
    with torch.no_grad():
        return module(**batch), batch["attention_mask"]


def test_adapters_adapterhub_saved_give_its_outputs(ref, work):
    jobs = [{"name": name, "config": config} for name, (config, _) in THEIRS.items()]
    hidden = _adapterhub("save", ref.weights.path.parent, work, jobs)
    for name, (_, method) in THEIRS.items():
        folder = work / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "adapter.safetensors",
            "adapter_config.json",
        ]
        adapter = read_adapter_dir(folder)
        assert (adapter.source, adapter.method) == ("adapterhub", method)
        check_base(adapter, ref)  # model_name: the package's folder, whose weights are ours
        module = _fresh(ref)
        attach(module, adapter)
        got, mask = _ours(module.eval(), work / "batch.npz")
        expected = module.pool(torch.from_numpy(hidden[name]), mask)
        assert torch.allclose(got, expected, atol=1e-5), name
        plain, _ = _ours(_fresh(ref), work / "batch.npz")
        assert (got - plain).abs().max() > 1e-3, f"{name}: the adapter changed nothing"


def test_adapterhub_loads_ours_and_gives_our_outputs(ref, work, tmp_path):
    import json as json_

    specs = {
        "our_pf": AdapterSpec.make("pfeiffer"),
        "our_hb": AdapterSpec.make("houlsby"),
        "our_lo": AdapterSpec.make("lora", r=4, alpha=8),
    }
    config = json_.loads((ref.weights.path.parent / "config.json").read_text())
    expected, jobs = {}, []
    for seed, (name, spec) in enumerate(specs.items()):
        module = _fresh(ref)
        spec = inject(module, spec)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for key, p in module.named_parameters():
                if "lora_" in key or ".adapters." in key:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        folder = write_adapterhub_dir(
            tmp_path / name,
            spec,
            adapter_state(module, spec),
            base_model=hub_name(ref.spec),
            base_config=config,
            name=name,
        )
        expected[name], mask = _ours(module.eval(), work / "batch.npz")
        jobs.append({"name": name, "folder": str(folder)})
    hidden = _adapterhub("load", ref.weights.path.parent, work, jobs)
    for name in specs:
        theirs = _fresh(ref).pool(torch.from_numpy(hidden[name]), mask)
        assert torch.allclose(theirs, expected[name], atol=1e-5), name


def test_adapterhub_pickle_weights_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    doc = {"name": "x", "model_name": "bert-base-uncased", "config": {"architecture": "lora"}}
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    (folder / "pytorch_adapter.bin").write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(BadInputError) as err:
        read_adapter_dir(folder)
    assert "pytorch_adapter.bin is a pickle file" in str(err.value)
    assert "use_safetensors=True" in str(err.value)


def test_adapterhub_settings_ours_cannot_follow_are_refused(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "parallel"
    folder.mkdir()
    settings = {"is_parallel": True, "reduction_factor": 16, "non_linearity": "relu"}
    doc = {"name": "x", "model_name": "m", "config": settings}
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    save_file({"a": torch.zeros(1)}, str(folder / "adapter.safetensors"))
    with pytest.raises(BadInputError, match="config.is_parallel = True"):
        read_adapter_dir(folder)
    doc["config"] = {"architecture": "prefix_tuning"}
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match="a 'prefix_tuning' adapter"):
        read_adapter_dir(folder)


def test_adapterhub_loads_what_export_writes_from_trained_bundles(ref, work, tmp_path_factory):
    """`transferkit export --format adapterhub` on real adapter bundles (LoRA, Pfeiffer): their
    library gives the bundle's own embeddings."""
    from adapter_bundles import adapter_bundles

    from transferkit import TransferClassifier
    from transferkit.export.adapter_files import export_adapter

    bundles = adapter_bundles(tmp_path_factory)
    out = tmp_path_factory.mktemp("exported-adapterhub")
    jobs, encoders = [], {}
    for name, path in bundles.items():
        folder = export_adapter(path, "adapterhub", out=out / name).path
        assert json.loads((folder / "adapter_config.json").read_text())["name"] == name
        jobs.append({"name": name, "folder": str(folder)})
        encoders[name] = TransferClassifier.load(path, progress=False, cache=False).backbone_
    hidden = _adapterhub("load", ref.weights.path.parent, work, jobs)
    for name, encoder in encoders.items():
        ours, mask = _ours(encoder.eval(), work / "batch.npz")
        theirs = encoder.pool(torch.from_numpy(hidden[name]), mask)
        assert torch.allclose(theirs, ours, atol=1e-5), name


def test_a_lora_adapterhub_has_no_place_for_is_refused(ref, tmp_path):
    module = _fresh(ref)
    spec = inject(module, AdapterSpec.make("lora", target_modules="all"))
    with pytest.raises(BadInputError, match=r"no place for .*attention\.output\.dense.*peft"):
        write_adapterhub_dir(
            tmp_path / "all", spec, adapter_state(module, spec), base_model="m", base_config={}
        )
    assert not (tmp_path / "all").exists()
