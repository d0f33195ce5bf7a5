import os
import re
import stat
import subprocess
import sys
import zipfile

import d2lzh
import numpy as np
import pytest

import lyricnn
import lyricnn.data.corpus
import lyricnn.fileio
from lyricnn.data.corpus import Vocab, load_corpus_chars, load_data_jay_lyrics, read_text


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


# -- issue 12: misuse and faults name the problem and the fix ----------------------


def make_zip(path, text="天青色等烟雨", compression=zipfile.ZIP_STORED, name="song.txt"):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(name, text)
    return path


def test_byte_order_mark_is_stripped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "分开 分开".encode("utf-8"))
    assert read_text(path) == "分开 分开"
    corpus, _, idx_to_char, _ = load_data_jay_lyrics(path, num_chars=None)
    assert idx_to_char[0] == "分" and "\ufeff" not in idx_to_char
    zpath = make_zip(tmp_path / "bom.zip", "\ufeff分开")
    assert read_text(zpath) == "分开"
    # Only one leading BOM is a mark; a second one (or one inside) is text.
    path.write_bytes(b"\xef\xbb\xbfa\xef\xbb\xbf")
    assert read_text(path) == "a\ufeff"


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_with_bad_crc_is_reported_corrupt(tmp_path, compression):
    text = "想要有直升机 想要和你飞到宇宙去" * 20
    path = make_zip(tmp_path / "bad.zip", text, compression)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"song.txt") + len("song.txt") + 5  # a byte inside the member's data
    raw[start] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as err:
        read_text(path)
    message = str(err.value)
    assert "bad.zip is a corrupt zip file" in message
    assert "replace it with an intact copy" in message and "not UTF-8" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no zipfile chain


def test_truncated_zip_is_reported_corrupt_not_as_non_utf8(tmp_path):
    path = make_zip(tmp_path / "cut.zip", "想要有直升机" * 200, zipfile.ZIP_DEFLATED)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.zip is a corrupt zip file \(truncated") as err:
        read_text(path)
    assert "not UTF-8" not in str(err.value) and "download it again" in str(err.value)


def test_zip_without_a_text_member_is_named(tmp_path):
    path = make_zip(tmp_path / "songs.zip", name="songs.md")
    with pytest.raises(ValueError, match=r"expected exactly one \.txt member, found \[\]; pass"):
        read_text(path)


def test_corpus_path_that_is_a_folder_is_named(tmp_path):
    with pytest.raises(ValueError) as err:
        read_text(tmp_path)
    assert str(err.value) == (f"corpus path {str(tmp_path)!r} is a folder, not a file; "
                              "pass the .txt or .zip file inside it")


def test_corpus_path_that_is_a_fifo_is_named_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(ValueError, match=r"'.*pipe' is a named pipe \(FIFO\), not a regular "
                                         r"file; save the text to a file and pass that"):
        load_corpus_chars(fifo)


def test_dev_null_is_named_as_a_device():
    with pytest.raises(ValueError, match=r"'/dev/null' is a character device \(like /dev/null\), "
                                         r"not a regular file; pass a \.txt or \.zip file"):
        load_data_jay_lyrics("/dev/null")


def test_missing_corpus_and_dangling_symlink(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"corpus file '.*nope.txt' does not exist$"):
        read_text(tmp_path / "nope.txt")
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "gone.txt")
    with pytest.raises(FileNotFoundError, match=r"is a symlink to '.*gone.txt', which does not"):
        read_text(link)


@pytest.mark.parametrize("content, what", [(b"", "is empty (0 bytes)"),
                                           (b"\xef\xbb\xbf", "holds only a byte-order mark")])
def test_empty_corpus_says_the_corpus_is_empty(tmp_path, content, what):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_data_jay_lyrics(path)
    assert str(err.value) == (f"the corpus is empty: {path} {what}; "
                              "pass a file with text in it")
    with pytest.raises(ValueError, match="the corpus is empty"):
        read_text(make_zip(tmp_path / "empty.zip", ""))


def test_non_utf8_message_says_how_to_convert(tmp_path):
    path = tmp_path / "gbk.txt"
    path.write_bytes("想要有直升机".encode("gbk"))
    with pytest.raises(ValueError, match=r"gbk.txt is not UTF-8 text .*re-save it as UTF-8, "
                                         r"e.g. iconv -f GB18030 -t UTF-8 gbk.txt"):
        read_text(path)


def test_oversized_zip_member_is_refused_before_inflating(tmp_path, monkeypatch):
    path = make_zip(tmp_path / "big.zip", "a" * 1000, zipfile.ZIP_DEFLATED)
    monkeypatch.setattr(lyricnn.data.corpus, "MAX_CORPUS_BYTES", 999)
    with pytest.raises(ValueError, match=r"big.zip:song.txt is 1,000 bytes; lyricnn reads at "
                                         r"most 999 bytes"):
        read_text(path)


def test_read_text_path_type():
    with pytest.raises(TypeError, match=r"path must be a str or a path, got 3 \(int\)"):
        read_text(3)


@pytest.mark.parametrize("num_chars", [np.int64(5), np.int32(5)])
def test_num_chars_accepts_numpy_integers(num_chars, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abcdefgh", encoding="utf-8")
    assert load_corpus_chars(path, num_chars) == "abcde"


def test_num_chars_message_names_the_fix():
    with pytest.raises(ValueError) as err:
        load_corpus_chars(num_chars=True)
    assert str(err.value) == ("num_chars must be an integer >= 1, got True (bool); "
                              "pass None for the whole text")


def test_unhashable_tokens_are_named_by_type():
    with pytest.raises(ValueError) as err:
        Vocab.from_tokens(["a", ["b"], "c"])
    assert str(err.value).startswith("tokens must be hashable tokens (str, int, tuple...), "
                                     "got a list: ['b']; pass a flat sequence")
    with pytest.raises(ValueError, match="idx_to_token must be hashable tokens .* got a dict"):
        Vocab(["a", {"b": 1}])


def test_duplicate_names_the_token():
    with pytest.raises(ValueError, match=r"got 'b' twice"):
        Vocab(["a", "b", "c", "b"])


@pytest.mark.parametrize("content", ['[1, 2]', '{"idx_to_token": "abc"}', 'not json', "null"])
def test_vocab_load_of_a_bad_file_names_it(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a vocabulary file: "):
        Vocab.load(path)


def test_vocab_save_is_atomic_with_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        Vocab.from_tokens("ab").save(tmp_path / "vocab.json")
    finally:
        os.umask(old)
    # Was 0600 (mkstemp's mode) before fileio: a shared run folder could not read it.
    assert stat.S_IMODE(os.stat(tmp_path / "vocab.json").st_mode) == 0o644
    assert lyricnn.data.corpus.atomic_write_text is lyricnn.fileio.atomic_write_text  # one writer


def test_data_module_does_not_load_mxnet():
    code = ("import sys, lyricnn.data.corpus, lyricnn.data.tokenize, lyricnn.ngram.model; "
            "print('mxnet' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
