"""Audio datasets: folders and path,label tables; decoding any rate, depth and channel count;
the clips that cannot be used are named with their reason."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.data.audio import UnreadableAudio, audio_duration, decode_audio, load_audio_table
from transferkit.errors import BadInputError
from transferkit.modalities import load_dataset

sf = pytest.importorskip("soundfile")


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def write(path, wave, rate, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)
    return path


def test_a_folder_of_clips_is_an_audio_dataset(tmp_path):
    write(tmp_path / "low" / "a.wav", tone(0.3, 16000, 220), 16000)
    write(tmp_path / "low" / "b.flac", tone(0.3, 22050, 230), 22050)
    write(tmp_path / "high" / "c.ogg", tone(0.3, 44100, 880), 44100, subtype="VORBIS")
    (tmp_path / "high" / "notes.txt").write_text("not a clip")
    ds = load_dataset(tmp_path)
    assert ds.modality == "audio" and ds.labels == ("high", "low") and len(ds) == 3


def test_a_path_label_table_is_an_audio_dataset(tmp_path):
    write(tmp_path / "clips" / "1.wav", tone(0.2, 8000), 8000)
    write(tmp_path / "clips" / "2.wav", tone(0.2, 8000, 300), 8000)
    (tmp_path / "clips" / "empty.wav").write_bytes(b"")
    table = tmp_path / "clips.csv"
    table.write_text(
        "file,class\nclips/1.wav,a\nclips/2.wav,b\nclips/gone.wav,a\nclips/empty.wav,b\n"
    )
    with pytest.warns(UserWarning, match="gone.wav: no such file.*\n.*empty.wav: empty file"):
        ds = load_dataset(table)
    assert ds.modality == "audio" and [s.label for s in ds.samples] == ["a", "b"]
    with pytest.raises(BadInputError, match="unreadable"):
        load_dataset(table, strict=True)
    with pytest.raises(BadInputError, match="no column 'wav'"):
        load_audio_table(table, path_col="wav")


def test_table_columns_are_found_as_in_text_tables_and_named_with_path_col(tmp_path):
    write(tmp_path / "1.wav", tone(0.2, 8000), 8000)
    write(tmp_path / "2.wav", tone(0.2, 8000, 300), 8000)
    table = tmp_path / "clips.csv"
    # the usual names in any case, and the label names text tables know (sentiment)
    table.write_text("File,Sentiment\n1.wav,a\n2.wav,b\n")
    assert [s.label for s in load_dataset(table).samples] == ["a", "b"]
    table.write_text("wav,sentiment\n1.wav,a\n2.wav,b\n")
    with pytest.raises(BadInputError, match="which column holds the path.*--path-col"):
        load_audio_table(table)
    assert len(load_dataset(table, path_col="wav")) == 2
    assert len(load_dataset(table, path_col="WAV")) == 2  # as text tables: any case


def test_text_col_still_names_the_path_column_of_an_audio_table_with_a_warning(tmp_path):
    write(tmp_path / "1.wav", tone(0.2, 8000), 8000)
    write(tmp_path / "2.wav", tone(0.2, 8000, 300), 8000)
    table = tmp_path / "clips.csv"
    table.write_text("wav,label\n1.wav,a\n2.wav,b\n")
    with pytest.warns(FutureWarning, match="--path-col"):
        assert len(load_dataset(table, text_col="wav")) == 2


def test_clips_that_cannot_be_used_are_found_once_at_load(tmp_path):
    from transferkit.data import UnreadableFilesWarning

    write(tmp_path / "d" / "low" / "a.wav", tone(0.3, 16000, 220), 16000)
    write(tmp_path / "d" / "high" / "b.wav", tone(0.3, 16000, 880), 16000)
    (tmp_path / "d" / "low" / "fake.wav").write_text("this is really text, not audio\n" * 20)
    write(tmp_path / "d" / "high" / "silent.flac", np.zeros(8000), 16000)
    with pytest.warns(UnreadableFilesWarning) as record:
        ds = load_dataset(tmp_path / "d")
    assert len(record) == 1 and len(ds) == 2
    reasons = {p.name: r for p, r in ds.skipped}
    assert "not a readable audio file" in reasons["fake.wav"] and "silent" in reasons["silent.flac"]
    table = tmp_path / "clips.csv"
    table.write_text("path,label\nd/low/a.wav,low\nd/high/b.wav,high\nd/low/fake.wav,low\n")
    with pytest.warns(UnreadableFilesWarning, match="fake.wav: not a readable audio file"):
        assert len(load_dataset(table)) == 2


@pytest.mark.parametrize("rate,channels,subtype", [(48000, 2, "PCM_24"), (8000, 1, "FLOAT")])
def test_any_rate_depth_and_channels_become_mono_at_the_backbone_rate(
    tmp_path, rate, channels, subtype
):
    path = write(tmp_path / "x.wav", tone(1.0, rate, channels=channels), rate, subtype)
    wave = decode_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 2 and audio_duration(path) == pytest.approx(1.0, abs=1e-3)
    # high-quality resampling keeps the tone's amplitude
    assert np.abs(wave[2000:-2000]).max() == pytest.approx(0.5, abs=0.01)


def test_unusable_clips_say_why(tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("this is really text, not audio\n" * 20)
    with pytest.raises(UnreadableAudio, match="not a readable audio file"):
        decode_audio(fake, 16000)
    silent = write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    with pytest.raises(UnreadableAudio, match="silent"):
        decode_audio(silent, 16000)
    no_samples = write(tmp_path / "none.wav", np.zeros((0,)), 16000)
    with pytest.raises(UnreadableAudio, match="zero-length"):
        decode_audio(no_samples, 16000)


def test_a_one_sample_clip_is_kept_for_the_encoder_to_pad(tmp_path):
    one = write(tmp_path / "one.wav", np.array([0.25]), 44100)
    wave = decode_audio(one, 16000)
    assert len(wave) >= 1 and np.isfinite(wave).all()
