"""``tfhub:PATH``: a SavedModel built here with TensorFlow embeds as TensorFlow itself does
(<= 1e-4) after its one tf2onnx conversion, which is cached by the folder's content and redone
when a file in it changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from foreign_helpers import digit_pixels_and_embeddings, require_module, run_python

from transferkit.backbones import resolve_backbone
from transferkit.errors import BadInputError
from transferkit.paths import cache_dir

# a small convolutional encoder with TF Hub's image signature: RGB floats in [0, 1]
SAVEDMODEL = """
import numpy as np, tensorflow as tf
class Encoder(tf.Module):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.k1 = tf.Variable(rng.normal(0, 0.3, (3, 3, 3, 8)).astype("float32"))
        self.k2 = tf.Variable(rng.normal(0, 0.3, (3, 3, 8, 16)).astype("float32"))
        self.w = tf.Variable(rng.normal(0, 0.3, (16, 12)).astype("float32"))
    @tf.function(input_signature=[tf.TensorSpec([None, 48, 48, 3], tf.float32)])
    def __call__(self, images):
        h = tf.nn.relu(tf.nn.conv2d(images, self.k1, 2, "SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, self.k2, 2, "SAME"))
        return {"feature_vector": tf.matmul(tf.reduce_mean(h, [1, 2]), self.w)}
m = Encoder()
tf.saved_model.save(m, FOLDER, signatures={"serving_default": m.__call__})
"""


@pytest.fixture(scope="module")
def savedmodel(tmp_path_factory) -> Path:
    require_module("tensorflow")
    require_module("tf2onnx")
    folder = tmp_path_factory.mktemp("tfhub") / "encoder"
    run_python(f"FOLDER = {str(folder)!r}\n" + SAVEDMODEL)
    return folder


def test_savedmodel_embeddings_equal_tensorflow(savedmodel, tmp_path):
    ref = resolve_backbone(f"tfhub:{savedmodel}")
    assert ref.num_features == 12 and ref.preprocess.input_size == 48  # from the graph
    assert ref.preprocess.layout == "nhwc" and ref.preprocess.scale == pytest.approx(1 / 255)
    pixels, got = digit_pixels_and_embeddings(ref, tmp_path)
    run_python(
        "import numpy as np, tensorflow as tf\n"
        f"fn = tf.saved_model.load({str(savedmodel)!r}).signatures['serving_default']\n"
        f"x = np.load({str(tmp_path / 'pixels.npy')!r}).transpose(0, 2, 3, 1) / 255.0\n"
        "out = fn(images=tf.constant(x.astype('float32')))['feature_vector'].numpy()\n"
        f"np.save({str(tmp_path / 'tf.npy')!r}, out)\n"
    )
    expected = np.load(tmp_path / "tf.npy")
    assert got.shape == expected.shape == (len(pixels), 12)
    assert np.abs(got - expected).max() <= 1e-4


def test_conversion_is_cached_by_content(savedmodel, tmp_path):
    import shutil

    resolve_backbone(f"tfhub:{savedmodel}")
    converted = sorted((cache_dir() / "foreign").glob("tfhub-*.onnx"))
    assert converted
    copy = tmp_path / "copy"
    shutil.copytree(savedmodel, copy)
    resolve_backbone(f"tfhub:{copy}")  # same content elsewhere: the same conversion
    assert sorted((cache_dir() / "foreign").glob("tfhub-*.onnx")) == converted
    (copy / "assets" / "note.txt").write_text("changed")
    changed = resolve_backbone(f"tfhub:{copy}")
    assert changed.weights_sha256 != resolve_backbone(f"tfhub:{savedmodel}").weights_sha256
    assert len(list((cache_dir() / "foreign").glob("tfhub-*.onnx"))) == len(converted) + 1


def test_sidecar_overrides_the_convention_and_bad_folders_are_refused(savedmodel, tmp_path):
    import shutil

    copy = tmp_path / "bgr"
    shutil.copytree(savedmodel, copy)
    Path(str(copy) + ".json").write_text(json.dumps({"channel_order": "bgr", "scale": 1}))
    ref = resolve_backbone(f"tfhub:{copy}")
    assert ref.preprocess.channel_order == "bgr" and ref.preprocess.scale == 1.0
    with pytest.raises(BadInputError, match="not a SavedModel folder"):
        resolve_backbone(f"tfhub:{tmp_path}")
