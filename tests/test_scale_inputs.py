"""Listing a big job's inputs: file lists and tables of file paths, read unchecked."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transferkit.errors import BadInputError
from transferkit.modalities import get_modality
from transferkit.scale.inputs import list_job_inputs, read_path_table

IMAGES = get_modality("image")


def test_a_csv_of_paths_is_read_relative_to_its_folder(tmp_path):
    table = tmp_path / "shots.csv"
    table.write_text("id,filename\n1,a/one.png\n2,/abs/two.png\n3,\n")
    assert read_path_table(table) == [tmp_path / "a" / "one.png", Path("/abs/two.png")]


def test_a_tsv_and_a_parquet_table_name_their_column(tmp_path):
    tsv = tmp_path / "shots.tsv"
    tsv.write_text("shot\tlabel\nx.png\tcat\n")
    assert read_path_table(tsv, "SHOT") == [tmp_path / "x.png"]  # case ignored, as for --text-col
    parquet = tmp_path / "shots.parquet"
    pq.write_table(pa.table({"image_path": ["p.png", None, "q.png"]}), parquet)
    assert read_path_table(parquet) == [tmp_path / "p.png", tmp_path / "q.png"]


def test_a_table_without_a_path_column_names_its_columns_and_the_flag(tmp_path):
    table = tmp_path / "shots.csv"
    table.write_text("shot,label\nx.png,cat\n")
    with pytest.raises(BadInputError, match=r"shots.csv.*\['shot', 'label'\].*--path-col"):
        read_path_table(table)
    with pytest.raises(BadInputError, match="no column 'picture'.*--path-col"):
        read_path_table(table, "picture")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the table is empty"),
        ("blank.csv", b"path\n\n", "names no files"),
        ("latin.csv", "path\nd\xe9j\xe0.png\n".encode("latin-1"), "must be UTF-8"),
        ("fake.parquet", b"path\nx.png\n", "not a readable Parquet file"),
    ],
)
def test_bad_tables_are_refused_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadInputError, match=message) as caught:
        read_path_table(tmp_path / name)
    assert name in str(caught.value)


def test_tables_mix_with_folders_and_lists_each_input_once(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"not decoded while listing")
    table = tmp_path / "more.csv"
    table.write_text("path\npool/b.png\nc.png\n")
    got = list_job_inputs([folder, table], IMAGES, path_col=None)
    assert [s.path.name for s in got] == ["a.png", "b.png", "c.png"]


def test_path_col_is_refused_for_a_text_model_naming_what_it_takes():
    with pytest.raises(BadInputError, match="--path-col: not a column option.*--text-col"):
        list_job_inputs(["reviews.csv"], get_modality("text"), path_col="file")
