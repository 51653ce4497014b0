"""Text datasets: CSV / TSV / JSONL / Parquet / .txt folders, columns, encodings, bad rows."""

from __future__ import annotations

import json
import warnings

import pytest

from transferkit.data.text import (
    TextDataWarning,
    is_text_data,
    report_overlap,
)
from transferkit.errors import BadInputError
from transferkit.modalities import load_dataset, text_inputs

ROWS = [
    ("a wonderful, moving film", "fresh"),
    ("dull and far too long", "rotten"),
    ("the best thing I saw this year", "fresh"),
    ("a mess from start to finish", "rotten"),
]


def _write_csv(path, header=("text", "label"), rows=ROWS, delimiter=","):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_columns_found_by_their_usual_names(tmp_path):
    ds = load_dataset(_write_csv(tmp_path / "reviews.csv", header=("Review", "Sentiment")))
    assert ds.modality == "text"
    assert ds.labels == ("fresh", "rotten")
    assert ds.texts == tuple(t for t, _ in ROWS)
    assert [s.label for s in ds.samples] == [label for _, label in ROWS]
    assert ds.samples[1].path.as_posix().endswith("reviews.csv:3")  # header is line 1


def test_tsv_and_explicit_columns(tmp_path):
    rows = [(label, "x", text) for text, label in ROWS]
    path = _write_csv(tmp_path / "d.tsv", header=("y", "id", "words"), rows=rows, delimiter="\t")
    ds = load_dataset(path, text_col="words", label_col="y")
    assert ds.texts[0] == ROWS[0][0]
    with pytest.raises(BadInputError) as info:
        load_dataset(path)
    assert "['y', 'id', 'words']" in str(info.value) and "--text-col" in str(info.value)


def test_missing_column_given_lists_the_columns(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    with pytest.raises(BadInputError, match=r"no column 'body'.*\['text', 'label'\]"):
        load_dataset(path, text_col="body")


def test_missing_label_column_is_named(tmp_path):
    path = _write_csv(tmp_path / "d.csv", header=("text", "score"), rows=[("a", "1"), ("b", "2")])
    with pytest.raises(BadInputError, match=r"which column holds the label.*'score'"):
        load_dataset(path)


def test_quoted_multiline_fields_and_commas(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'text,label\n"first line\nsecond line, with a comma",pos\n"plain",neg\n', encoding="utf-8"
    )
    ds = load_dataset(path)
    assert ds.texts == ("first line\nsecond line, with a comma", "plain")


def test_numeric_labels_stay_labels_as_written(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [{"text": "one", "label": 1}, {"text": "two", "label": 10}, {"text": "3", "label": 2}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    ds = load_dataset(path)
    assert set(ds.labels) == {"1", "10", "2"}
    csv_path = _write_csv(tmp_path / "n.csv", rows=[("a", "01"), ("b", "1"), ("c", "1.0")])
    assert set(load_dataset(csv_path).labels) == {"01", "1", "1.0"}


def test_jsonl_bad_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"d.jsonl:2: not valid JSON"):
        load_dataset(path)


def test_multilabel_cells_are_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": ["x", "y"]}\n', encoding="utf-8")
    with pytest.raises(BadInputError, match="one label per row"):
        load_dataset(path)


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"content": [t for t, _ in ROWS], "target": [0, 1, 0, 1]})
    pq.write_table(table, tmp_path / "d.parquet")
    ds = load_dataset(tmp_path / "d.parquet")
    assert ds.labels == ("0", "1") and ds.texts[3] == ROWS[3][0]


def test_txt_folder_with_unicode_class_names(tmp_path):
    for label, texts in {"正面": ["很好看", "非常喜欢"], "负面": ["太差了"]}.items():
        (tmp_path / label).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "正面" / ".hidden.txt").write_text("ignored", encoding="utf-8")
    assert is_text_data(tmp_path)
    ds = load_dataset(tmp_path)
    assert ds.modality == "text" and ds.labels == ("正面", "负面")
    assert sorted(ds.texts) == sorted(["很好看", "非常喜欢", "太差了"])


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nhello,a\nbye,b\n".encode("utf-8-sig"))
    ds = load_dataset(path)
    assert ds.texts == ("hello", "bye")  # the header matched despite the BOM


def test_other_encodings_are_detected_and_named(tmp_path):
    path = tmp_path / "gbk.csv"
    body = "text,label\n" + "".join(
        f"{t},{lab}\n"
        for t, lab in [
            ("这部电影非常好看，演员的表演也很出色", "正面"),
            ("剧情拖沓，看得我昏昏欲睡，不推荐", "负面"),
            ("画面很美，音乐也很动人，值得一看", "正面"),
        ]
    )
    path.write_bytes(body.encode("gb18030"))
    with pytest.warns(TextDataWarning, match=r"not UTF-8; read it as"):
        ds = load_dataset(path)
    assert "这部电影非常好看" in ds.texts[0]


def test_binary_files_are_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\n\x00\x01\x02\xff\xfe\x00garbage")
    with pytest.raises(BadInputError, match="binary data"):
        load_dataset(path)


def test_empty_and_unlabelled_rows_dropped_with_one_warning_each(tmp_path):
    rows = [*ROWS, ("   ", "fresh"), ("no label here", "")]
    path = _write_csv(tmp_path / "d.csv", rows=rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, TextDataWarning)]
    assert any("1 row(s) with an empty text" in m and "d.csv:6" in m for m in messages)
    assert any("1 row(s) with no label" in m and "d.csv:7" in m for m in messages)
    assert len(ds) == len(ROWS)


def test_duplicates_and_conflicting_labels_are_reported(tmp_path):
    rows = [*ROWS, ("A wonderful,  moving film", "fresh"), ("dull and far too long", "fresh")]
    path = _write_csv(tmp_path / "d.csv", rows=rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 text(s) repeat an earlier one" in messages
    assert "appear again with a different label" in messages and "d.csv:7" in messages
    assert len(ds) == len(rows)  # kept: the user decides


def test_test_texts_seen_in_training_are_reported(tmp_path):
    train = load_dataset(_write_csv(tmp_path / "train.csv"))
    test = load_dataset(_write_csv(tmp_path / "test.csv", rows=[ROWS[0], ("new one", "fresh")]))
    with pytest.warns(TextDataWarning, match=r"1 of 2 test text\(s\) also appear"):
        assert report_overlap(train, test) == 1


def test_unlabelled_inputs_from_txt_lines_and_tables(tmp_path):
    (tmp_path / "a.txt").write_text("first\n\nsecond\n", encoding="utf-8")
    _write_csv(tmp_path / "b.csv")
    ds = text_inputs([tmp_path / "a.txt", tmp_path / "b.csv"])
    assert ds.texts[:2] == ("first", "second") and len(ds) == 2 + len(ROWS)
    assert all(s.label is None for s in ds.samples)


def test_split_and_fingerprint_follow_the_texts(tmp_path):
    rows = [(f"text number {i}", "ab"[i % 2]) for i in range(20)]
    ds = load_dataset(_write_csv(tmp_path / "d.csv", rows=rows))
    train, val, test = ds.split(test_size=0.2, val_size=0.1, seed=0)
    assert len(train) + len(val) + len(test) == 20 and test.modality == "text"
    other = load_dataset(_write_csv(tmp_path / "e.csv", rows=[(t + "!", lab) for t, lab in rows]))
    assert ds.fingerprint() != other.fingerprint()


def test_column_options_are_refused_for_image_folders(tmp_path):
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "x.png")
    with pytest.raises(BadInputError, match="--text-col only apply to tables"):
        load_dataset(tmp_path, text_col="text")


def test_missing_path(tmp_path):
    with pytest.raises(BadInputError, match="no such"):
        load_dataset(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- issue 16


def _text_warnings(load, *args, **kwargs):
    """(result, messages of the TextDataWarnings it raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, TextDataWarning)]


def test_a_csv_field_of_5_mb_loads_and_the_field_limit_is_left_as_it_was(tmp_path):
    import csv

    huge = "word " * 1_000_000
    path = _write_csv(tmp_path / "d.csv", rows=[*ROWS, (huge, "fresh")])
    limit = csv.field_size_limit()
    ds = load_dataset(path)
    assert ds.texts[-1] == huge and csv.field_size_limit() == limit


def _tsv(path, lines):
    path.write_text("\n".join(["text\tlabel", *lines]) + "\n", encoding="utf-8")
    return path


def _reviews(n=19):
    return [f"review {i} is fine\t{'pos' if i % 2 else 'neg'}" for i in range(1, n + 1)]


def test_tsv_quotes_are_kept_as_written_when_the_file_does_not_quote_its_fields(tmp_path):
    lines = _reviews()
    lines[2] = '"Quoted" is a word\tpos'  # line 4: balanced quotes inside a field
    lines[4] = '"review 5 has a stray quote\tpos'  # line 6: an unbalanced quote
    lines[12] = 'review 13 closes it"\tpos'
    ds, messages = _text_warnings(load_dataset, _tsv(tmp_path / "d.tsv", lines))
    assert len(ds) == 19 and not messages
    assert ds.texts[2] == '"Quoted" is a word'
    assert ds.texts[4] == '"review 5 has a stray quote'
    assert ds.texts[12] == 'review 13 closes it"'


def test_tsv_that_quotes_its_fields_is_read_with_quotes(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text(
        '"text"\t"label"\n"a tab\there"\t"pos"\n"""Quoted"" word"\t"neg"\n"line\nbreak"\t"pos"\n',
        encoding="utf-8",
    )
    ds, messages = _text_warnings(load_dataset, path)
    assert ds.texts == ("a tab\there", '"Quoted" word', "line\nbreak") and not messages
    assert ds.labels == ("neg", "pos")


def test_rows_merged_by_a_stray_quote_are_reported_with_their_lines(tmp_path):
    lines = [f'"text {i}"\t"{"pos" if i % 2 else "neg"}"' for i in range(1, 20)]
    lines[4] = '"review 5 opens a quote\tpos'  # line 6, in a file that quotes its fields
    path = tmp_path / "d.tsv"
    path.write_text('"text"\t"label"\n' + "\n".join(lines) + "\n", encoding="utf-8")
    _, messages = _text_warnings(load_dataset, path)
    assert any(
        "d.tsv" in m and "lines 6-" in m and "stray quote" in m and "19 data lines" in m
        for m in messages
    ), messages


def test_csv_rows_merged_by_a_stray_quote_are_reported(tmp_path):
    body = "".join(f"review {i} is fine,{'pos' if i % 2 else 'neg'}\n" for i in range(1, 20))
    body = body.replace("review 5 is", '"review 5 is').replace(
        "review 14 is fine,", 'review 14 is fine",'
    )
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + body, encoding="utf-8")
    ds, messages = _text_warnings(load_dataset, path)
    assert len(ds) == 10
    assert any("d.csv: lines 6-15" in m and "stray quote" in m for m in messages), messages


def test_legitimate_multiline_csv_fields_are_not_reported(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'text,label\n"first line\nsecond line, with a comma",pos\n"plain",neg\n"x",pos\n',
        encoding="utf-8",
    )
    ds, messages = _text_warnings(load_dataset, path)
    assert len(ds) == 3 and not messages
    assert ds.samples[0].path.as_posix().endswith("d.csv:2")  # where the row starts


def test_csv_quotes_that_do_not_follow_csv_rules_are_named(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    path.write_text(
        path.read_text(encoding="utf-8") + '"Quoted" is a word,fresh\n', encoding="utf-8"
    )
    ds, messages = _text_warnings(load_dataset, path)
    assert len(ds) == len(ROWS) + 1
    assert any("d.csv:6" in m and '""' in m for m in messages), messages


def test_a_parquet_text_column_of_integers_is_named_in_a_warning(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": list(range(20)), "label": list("ab" * 10)}), tmp_path / "i.pq")
    _, messages = _text_warnings(load_dataset, tmp_path / "i.pq")
    assert any(
        "i.pq" in m and "'text'" in m and "int" in m and "--text-col" in m for m in messages
    ), messages


def test_a_jsonl_text_that_is_not_a_string_is_named_in_a_warning(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [{"text": t, "label": lab} for t, lab in ROWS] + [{"text": 42, "label": "fresh"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    _, messages = _text_warnings(load_dataset, path)
    assert any("d.jsonl:5" in m and "int" in m and "'text'" in m for m in messages), messages


def test_a_text_column_of_numbers_is_named_in_a_warning(tmp_path):
    rows = [(str(i), "ab"[i % 2]) for i in range(10)]
    path = _write_csv(tmp_path / "d.csv", header=("id", "label"), rows=rows)
    _, messages = _text_warnings(load_dataset, path)
    assert any("'id'" in m and "numbers" in m and "--text-col" in m for m in messages), messages


@pytest.mark.parametrize("missing", ["", "NaN", "nan", "null", "#N/A"])
def test_empty_or_nan_labels_are_missing_labels_named_with_their_column(tmp_path, missing):
    path = _write_csv(tmp_path / "d.csv", rows=[*ROWS, ("an odd one", missing)])
    ds, messages = _text_warnings(load_dataset, path)
    assert ds.labels == ("fresh", "rotten")
    assert any("no label" in m and "d.csv:6" in m and "'label'" in m for m in messages)


def test_json_nan_label_is_a_missing_label(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": t, "label": lab}) for t, lab in ROWS]
    path.write_text("\n".join([*lines, '{"text": "odd", "label": NaN}']) + "\n", encoding="utf-8")
    ds, messages = _text_warnings(load_dataset, path)
    assert ds.labels == ("fresh", "rotten") and any("d.jsonl:5" in m for m in messages)


def test_a_class_too_small_to_split_names_the_table_rows_and_column(tmp_path):
    path = _write_csv(tmp_path / "reviews.csv", rows=[*ROWS, ("oops", "frsh")])
    ds = load_dataset(path)
    with pytest.raises(BadInputError) as info:
        ds.split()
    message = str(info.value)
    assert "'frsh'" in message and "reviews.csv:6" in message and "'label'" in message
    assert "folder" not in message and "drop the row" in message


def test_a_short_row_has_no_label_instead_of_crashing(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    path.write_text(path.read_text(encoding="utf-8") + "just a text\n", encoding="utf-8")
    ds, messages = _text_warnings(load_dataset, path)
    assert len(ds) == len(ROWS) and any("no label" in m and "d.csv:6" in m for m in messages)


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_a_table_without_a_header_row_is_named_with_the_line_to_add(tmp_path, suffix, delimiter):
    path = tmp_path / f"d{suffix}"
    rows = [(text.replace(",", ""), label) for text, label in ROWS]
    path.write_text(
        "".join(f"{text}{delimiter}{label}\n" for text, label in rows), encoding="utf-8"
    )
    with pytest.raises(BadInputError) as info:
        load_dataset(path)
    message = str(info.value)
    assert "no header row" in message and f"text{delimiter}label" in message
