"""The domain gap: proxy A-distance on real data (near 0 for two halves of one dataset, near 2
for two different ones), the per-class mix, and ``transferkit gap`` end to end."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
from conftest import make_shapes_folder
from PIL import Image
from sklearn.datasets import load_digits
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.cli import main
from transferkit.domain_gap.analysis import neighbour_mix
from transferkit.strategies.adapt.domain_classifier import proxy_a_distance


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def test_two_halves_of_one_dataset_are_near_0_and_two_datasets_near_2(digits):
    X, _ = digits
    order = np.random.default_rng(0).permutation(len(X))
    halves = proxy_a_distance(X[order[:800]], X[order[800:1600]], seed=0)
    assert halves["a_distance"] < 0.2, halves
    # the same digits, colour-inverted (white on black -> black on white): another domain
    inverted = proxy_a_distance(X[order[:800]], 16 - X[order[800:1600]], seed=0)
    assert inverted["a_distance"] > 1.9, inverted
    # with the source re-weighted to a single class, it is far from all classes together
    y = digits[1][order[:800]]
    weight = (y == 0).astype(float) + 1e-9
    narrowed = proxy_a_distance(X[order[:800]], X[order[800:1600]], source_weight=weight)
    assert narrowed["a_distance"] > halves["a_distance"] + 0.5


def test_a_few_rows_in_many_dimensions_apart_along_one_direction_are_told_apart():
    # 48 vs 10 rows of 384 dimensions (a text encoder's), apart along one direction: whitening
    # every principal direction drowned it in the noise ones (A-distance 0.0)
    rng = np.random.default_rng(0)
    source = rng.normal(0, 1, (48, 384))
    target = rng.normal(0, 1, (10, 384))
    source[:, :40] += 3.0
    assert proxy_a_distance(source, target, seed=0)["a_distance"] > 1.5


def test_a_class_the_target_sits_among_mixes_and_one_it_never_nears_does_not(digits):
    X, y = digits
    source = X[np.isin(y, (0, 1))]
    labels = (y[np.isin(y, (0, 1))] == 1).astype(int)
    target = X[y == 1][::2]  # only ones: the target sits among class 1, never near class 0
    mix, nearest = neighbour_mix(source, labels, target, n_classes=2)
    assert mix[1] > 0.8 and mix[0] < 0.1
    assert nearest[1] > 0.9 * len(target) and nearest.sum() == len(target)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gap")
    source = make_shapes_folder(root / "source", per_class=6, classes=("circle", "square"))
    target = root / "target"
    target.mkdir()
    for i, path in enumerate(sorted(source.rglob("*.png"))[::2]):
        # the target domain: the shapes colour-inverted
        inverted = Image.eval(Image.open(path).convert("RGB"), lambda v: 255 - v)
        inverted.save(target / f"{i}.png")
    (target / "broken.png").write_bytes(b"not a png")
    texts = root / "texts"
    texts.mkdir()
    for i in range(3):
        (texts / f"{i}.txt").write_text(f"a review number {i}")
    return {
        "source": source,
        "target": target,
        "texts": texts,
        "weights": write_tiny_weights(root / "tiny.safetensors"),
        "root": root,
    }


def _gap(world, out, target, capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(world["root"] / "cache"))
    argv = ["gap", world["source"], target, "--out", out, "--backbone", NAME,
            "--weights", world["weights"], "--runtime", "torch"]  # fmt: skip
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_gap_writes_its_json_and_page_with_a_line_per_stage(world, capsys, monkeypatch, caplog):
    out = world["root"] / "gap"
    caplog.set_level(logging.INFO, logger="transferkit")
    code, printed, err = _gap(world, out, world["target"], capsys, monkeypatch)
    assert code == 0, err
    for k in range(1, 6):
        assert f"gap: {k}/5 " in caplog.text
    assert "broken.png" in err  # unreadable target file: warned and skipped
    gap = json.loads((out / "gap.json").read_text())
    assert json.loads(printed)["a_distance"] == round(gap["a_distance"], 4)
    assert 0 <= gap["a_distance"] <= 2 and gap["n_target"] == 6
    assert set(gap["per_class"]) == {"circle", "square"}
    assert sum(c["target_nearest"] for c in gap["per_class"].values()) == 6
    assert len(gap["most_like_target"]) == len(gap["least_like_target"]) > 0
    most, least = gap["most_like_target"][0], gap["least_like_target"][0]
    assert most["p_target"] >= least["p_target"]
    assert any("broken.png" in path for path, _ in gap["skipped_files"])
    page = (out / "gap.html").read_text()
    assert "Proxy A-distance" in page and "data:image/jpeg;base64," in page
    assert page.count("<circle") == 12 and "target (×)" in page


def test_gap_refuses_a_target_of_another_kind_naming_both(world, capsys, monkeypatch):
    out = world["root"] / "refused"
    code, _, err = _gap(world, out, world["texts"], capsys, monkeypatch)
    assert code == 2 and "holds texts but the training data holds images" in err
    assert not out.exists()


def test_gap_of_film_reviews_and_product_reviews_with_the_text_encoder(tmp_path, monkeypatch):
    """Real text, the packaged MiniLM: film reviews vs product reviews are two domains, film
    reviews vs other film reviews are one."""
    from conftest import require_offline_weights

    require_offline_weights("all_minilm_l6_v2")
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    good = ["a moving film with superb acting", "funny and warm and beautifully shot",
            "the director's best work so far", "a delight from the first scene",
            "gripping thriller with a great cast", "the soundtrack is wonderful"]  # fmt: skip
    bad = ["the plot drags and the ending is silly", "two hours of my life I will not get back",
           "wooden dialogue and a predictable story", "the sequel nobody asked for",
           "boring characters in a dull script", "too long and badly edited"]  # fmt: skip
    more_films = ["an unforgettable performance by the lead", "the jokes fall flat",
                  "stunning visuals and a clever plot", "I walked out halfway through",
                  "the best comedy of the year", "a tedious remake of a classic",
                  "the cast has real chemistry", "the story makes no sense"]  # fmt: skip
    products = ["the phone battery lasts two days", "the charger broke after a week",
                "this kettle boils water fast", "cheap plastic and the lid cracked",
                "the headphones are comfortable", "the blender is loud but works",
                "the vacuum cleaner lost suction", "sturdy case that fits my tablet"]  # fmt: skip
    source = tmp_path / "films.csv"
    rows = [f"{t},good" for t in good] + [f"{t},bad" for t in bad]
    source.write_text("text,label\n" + "\n".join(rows) + "\n")
    for name, texts in (("products", products), ("films_more", more_films)):
        (tmp_path / f"{name}.csv").write_text("text\n" + "\n".join(texts) + "\n")
    for name in ("products", "films_more"):
        code = main(["-q", "gap", str(source), str(tmp_path / f"{name}.csv"),
                     "--out", str(tmp_path / name)])  # fmt: skip
        assert code == 0
    far = json.loads((tmp_path / "products" / "gap.json").read_text())
    near = json.loads((tmp_path / "films_more" / "gap.json").read_text())
    assert far["a_distance"] > 1.5 and near["a_distance"] < 0.8, (far, near)
    page = (tmp_path / "products" / "gap.html").read_text()
    assert 'class="snippet"' in page  # texts are shown as texts
