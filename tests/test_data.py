import os
import subprocess
import sys
import zipfile

import d2lzh
import pytest

import lyricnn
from lyricnn.data import Vocab, load_corpus_chars, load_data_jay_lyrics, read_text


def test_whole_corpus_facts_from_the_seed():
    chars = load_corpus_chars(num_chars=None)
    assert len(chars) == 63282
    assert len(set(chars)) == 2582
    assert "\n" not in chars and "\r" not in chars


def test_book_default_first_10000_chars():
    corpus_indices, char_to_idx, idx_to_char, vocab_size = load_data_jay_lyrics()
    assert len(corpus_indices) == 10000
    # The book prints 1027 distinct characters in the first 10000; so do we.
    assert vocab_size == len(char_to_idx) == len(idx_to_char) == 1027
    text = "".join(idx_to_char[i] for i in corpus_indices)
    assert text[:10] == "想要有直升机 想要和"
    assert all(char_to_idx[c] == i for i, c in enumerate(idx_to_char))


def test_same_text_and_vocabulary_as_d2lzh(lyrics_zip, tmp_path, monkeypatch):
    # d2lzh only finds '../data/jaychou_lyrics.txt.zip' relative to the cwd.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "jaychou_lyrics.txt.zip").write_bytes(lyrics_zip.read_bytes())
    (tmp_path / "nb").mkdir()
    monkeypatch.chdir(tmp_path / "nb")
    theirs = d2lzh.load_data_jay_lyrics()
    ours = load_data_jay_lyrics()
    assert [theirs[2][i] for i in theirs[0]] == [ours[2][i] for i in ours[0]]
    assert set(theirs[2]) == set(ours[2]) and theirs[3] == ours[3]


def test_loading_does_not_depend_on_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_data_jay_lyrics()[3] == 1027


INDICES_SCRIPT = (
    "import lyricnn; c, _, i2c, _ = lyricnn.load_data_jay_lyrics(); "
    "print(c[:50], i2c[:50])"
)


def test_vocabulary_is_identical_across_hash_seeds():
    outputs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", INDICES_SCRIPT], env=env,
                             capture_output=True, text=True, check=True)
        outputs.append(out.stdout)
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_vocabulary_is_first_appearance_order():
    vocab = Vocab.from_tokens("abcab d")
    assert vocab.idx_to_token == ["a", "b", "c", " ", "d"]
    assert vocab.to_indices("dab") == [4, 0, 1]
    assert "".join(vocab.to_tokens([2, 3, 0])) == "c a"
    assert len(vocab) == 5 and "a" in vocab and "z" not in vocab


def test_vocab_unknown_token_names_it():
    with pytest.raises(ValueError, match="'z'"):
        Vocab.from_tokens("abc").index("z")


def test_vocab_rejects_duplicates():
    with pytest.raises(ValueError, match="duplicates"):
        Vocab(["a", "a"])


def test_vocab_json_round_trip(tmp_path):
    vocab = Vocab.from_tokens("想要有直升机 想要和你")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab
    assert "想" in path.read_text(encoding="utf-8")  # human-readable, not \u escapes
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


def test_other_txt_and_zip_corpora(tmp_path):
    txt = tmp_path / "song.txt"
    txt.write_text("天青色\n等烟雨\r\n而我在等你", encoding="utf-8")
    chars = load_corpus_chars(txt, num_chars=None)
    assert chars == "天青色 等烟雨  而我在等你"
    zpath = tmp_path / "songs.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(txt, "inner/anything.txt")
    assert load_corpus_chars(zpath, num_chars=5) == "天青色 等"
    indices, c2i, i2c, size = load_data_jay_lyrics(path=zpath, num_chars=None)
    assert "".join(i2c[i] for i in indices) == chars and size == len(set(chars))


def test_read_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_text(bad)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.txt", "a")
        z.writestr("b.txt", "b")
    with pytest.raises(ValueError, match="exactly one"):
        read_text(two)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "100"])
def test_num_chars_is_validated(bad):
    with pytest.raises(ValueError, match="num_chars"):
        load_corpus_chars(num_chars=bad)


def test_exported_under_book_name():
    assert lyricnn.load_data_jay_lyrics is load_data_jay_lyrics
