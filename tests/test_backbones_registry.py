"""Backbone registry: names, did-you-mean errors, dynamic timm specs, the offline listing."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from transferkit.backbones import get_spec, list_backbones, list_specs, load_backbone, register
from transferkit.backbones.registry import BackboneSpec
from transferkit.errors import BadInputError

BUILT_INS = {
    "mobilenet_v2",
    "mobilenet_v3_large",
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet_b0",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "all_minilm_l6_v2",
    "use_multilingual",
    "wordllama",
    "glove_6b_50d",
    "aisfx",
    "speech_embedding",
    "speaker_ge2e",
    "mfcc_stats",
    "multilingual_e5_small",
    "birdnet",
    "opennsfw",
}


def test_built_ins_are_registered():
    assert {s.name for s in list_specs()} == BUILT_INS


@pytest.mark.parametrize("alias", ["MobileNet_V2", "mobilenet-v2", " mobilenet_v2 "])
def test_names_are_case_and_dash_insensitive(alias):
    assert get_spec(alias) is get_spec("mobilenet_v2")


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(BadInputError) as info:
        get_spec("resnet19")
    message = str(info.value)
    assert "Did you mean 'resnet18'" in message
    assert all(name in message for name in BUILT_INS)
    assert "timm:<model>" in message
    assert info.value.exit_code == 2


def test_register_refuses_a_second_spec_with_the_same_name():
    clone = dataclasses.replace(get_spec("resnet18"))
    with pytest.raises(ValueError, match="already registered"):
        register(clone)


def test_spec_validates_its_fields():
    with pytest.raises(ValueError, match="source"):
        dataclasses.replace(get_spec("resnet18"), source="github")
    with pytest.raises(ValueError, match="embedding_dim"):
        dataclasses.replace(get_spec("resnet18"), embedding_dim=0)


def test_efficientnet_lite_sizes_match_the_package():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    for variant in ("lite0", "lite1", "lite2"):
        spec = get_spec(f"efficientnet_{variant}")
        size = efficientnet.EfficientNet.get_image_size(f"efficientnet-{variant}")
        assert spec.preprocess.input_size == size
        assert spec.preprocess.resize_size == size + 32


def test_import_does_not_import_timm():
    code = "import sys, transferkit.backbones; sys.exit('timm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- timm ------------------------------------------------------------------------------------


def test_timm_spec_takes_preprocessing_from_the_pretrained_config():
    pytest.importorskip("timm")
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    spec = get_spec("timm:mobilenetv3_small_050")
    data = resolve_data_config(
        {}, pretrained_cfg=get_pretrained_cfg("mobilenetv3_small_050").to_dict()
    )
    assert isinstance(spec, BackboneSpec) and spec.source == "timm"
    assert spec.name == "timm:mobilenetv3_small_050"
    assert spec.preprocess.input_size == data["input_size"][1]
    assert spec.preprocess.resize_size == math.floor(data["input_size"][1] / data["crop_pct"])
    assert spec.preprocess.interpolation == data["interpolation"]
    assert spec.preprocess.mean == tuple(data["mean"])
    assert spec.weights.hf_hub_id == "timm/mobilenetv3_small_050.lamb_in1k"
    assert spec.weights.hf_filename == "model.safetensors"
    assert get_spec("timm:mobilenetv3_small_050") is spec  # cached


def test_timm_tagged_name_uses_that_tags_config():
    pytest.importorskip("timm")
    spec = get_spec("timm:resnet18.tv_in1k")
    assert spec.preprocess.interpolation == "bilinear"  # the default tag (a1_in1k) is bicubic
    assert spec.weights.hf_hub_id == "timm/resnet18.tv_in1k"
    assert spec.embedding_dim == 512


def test_unknown_timm_model_and_tag_are_bad_input():
    pytest.importorskip("timm")
    with pytest.raises(BadInputError, match="Did you mean 'timm:resnet18'"):
        get_spec("timm:resnet19")
    with pytest.raises(BadInputError, match="timm:resnet18.tv_in1k"):
        get_spec("timm:resnet18.nope")


# --- listing and load_backbone arguments -----------------------------------------------------


def test_list_backbones_reports_offline_availability(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # not the developer's cache
    rows = {row["name"]: row for row in list_backbones()}
    assert set(rows) == BUILT_INS
    for row in rows.values():
        assert set(row) == {
            "name",
            "modality",
            "source",
            "embedding_dim",
            "licence",
            "non_commercial",
            "offline_available",
        }
    assert rows["resnet18"]["offline_available"] is False
    # installed by `make models` (requirements-weights.txt); CI always has them
    assert rows["mobilenet_v2"]["offline_available"] is True
    assert rows["efficientnet_lite0"]["offline_available"] is True
    assert rows["aisfx"]["offline_available"] is True
    assert rows["mfcc_stats"]["offline_available"] is True  # nothing to download: no weights


def test_weights_and_pretrained_false_conflict(tmp_path):
    with pytest.raises(BadInputError, match="pretrained=False"):
        load_backbone("resnet18", weights=tmp_path / "w.pth", pretrained=False)


def test_published_torchvision_configs_match_torchvision():
    """The copied per-weight configs (kept as data so naming a backbone needs no torchvision
    import) must equal torchvision's own enums, entry by entry."""
    from transferkit.backbones.torchvision_models import (
        PUBLISHED,
        preprocess_from_weights,
        torchvision_weights,
    )

    for arch, published in PUBLISHED.items():
        weights = torchvision_weights(arch)
        assert published.url == weights.url, arch
        assert published.preprocess() == preprocess_from_weights(weights), arch
        assert get_spec(arch).preprocess == preprocess_from_weights(weights), arch
