"""Tokenisation options and the Penn Treebank loader."""
import builtins
import importlib.util
import zipfile

import pytest

from lyricnn.data.tokenize import (
    EOS, PTB_SPLITS, UNK, chars, get_tokenizer, load_ptb, segment, tokenize, words)

HAS_JIEBA = importlib.util.find_spec("jieba") is not None


def test_chars_keeps_every_character_including_spaces():
    assert chars("想要 有") == ["想", "要", " ", "有"]
    assert tokenize("想要 有") == chars("想要 有")
    assert chars("") == []


def test_words_split_on_any_whitespace():
    assert words(" the  cat\tsat\n on ") == ["the", "cat", "sat", "on"]
    assert tokenize("a b", mode="word") == ["a", "b"]


def test_words_with_eos_end_every_line_and_skip_blank_lines():
    text = "the cat\n\n  \nsat on\r\nthe mat\n"
    assert words(text, eos=True) == ["the", "cat", EOS, "sat", "on", EOS, "the", "mat", EOS]
    assert words("no newline", eos=True) == ["no", "newline", EOS]


def test_unknown_mode_and_non_text_are_errors():
    with pytest.raises(ValueError, match="mode"):
        get_tokenizer("bpe")
    with pytest.raises(ValueError, match="mode"):
        tokenize("abc", mode=["char"])
    with pytest.raises(TypeError, match="text"):
        tokenize(b"abc")


def test_segment_without_jieba_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_jieba(name, *args, **kwargs):
        if name == "jieba":
            raise ImportError("No module named 'jieba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jieba)
    with pytest.raises(ImportError, match=r"pip install 'lyricnn\[segment\]'"):
        segment("老板来包福贵")
    with pytest.raises(ImportError, match="pip install jieba"):
        tokenize("老板来包福贵", mode="jieba")


@pytest.mark.skipif(not HAS_JIEBA, reason="optional dependency jieba is not installed")
def test_segment_with_jieba_cuts_words_and_keeps_every_character():
    text = "老板，来包富贵 我们一起去看电影"
    tokens = segment(text)
    assert "".join(tokens) == text
    assert "老板" in tokens and "电影" in tokens
    assert len(tokens) < len(text)


# -- Penn Treebank -------------------------------------------------------------


@pytest.fixture(scope="module")
def ptb():
    return {split: load_ptb(split) for split in PTB_SPLITS}


def test_ptb_split_sizes(ptb):
    # Counted from ptb.zip: words + one <eos> per line.
    #   train 887,521 words + 42,068 lines; valid 70,390 + 3,370; test 78,669 + 3,761.
    assert len(ptb["train"]) == 929_589 and ptb["train"].count(EOS) == 42_068
    assert len(ptb["valid"]) == 73_760 and ptb["valid"].count(EOS) == 3_370
    assert len(ptb["test"]) == 82_430 and ptb["test"].count(EOS) == 3_761


def test_ptb_vocabulary_is_closed(ptb):
    vocab = set(ptb["train"])
    assert len(vocab) == 10_000 and UNK in vocab and EOS in vocab
    assert set(ptb["valid"]) <= vocab and set(ptb["test"]) <= vocab


def test_ptb_text_starts_as_published(ptb):
    assert ptb["train"][:3] == ["aer", "banknote", "berlitz"]
    assert ptb["train"][24:27] == [EOS, "pierre", UNK]
    assert ptb["train"][-1] == EOS


def test_ptb_bad_split_and_explicit_path(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_ptb("dev")
    archive = tmp_path / "ptb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ptb/ptb.valid.txt", " a b \n\n c \n")
    assert load_ptb("valid", path=archive) == ["a", "b", EOS, "c", EOS]
    assert load_ptb("valid", path=tmp_path) == ["a", "b", EOS, "c", EOS]
    with pytest.raises(FileNotFoundError):
        load_ptb("valid", path=tmp_path / "missing.zip")


# -- issue 12: corrupt archives and misuse name the problem ---------------------------


def test_corrupt_ptb_zip_is_reported_corrupt(tmp_path):
    archive = tmp_path / "ptb.zip"
    with zipfile.ZipFile(archive, "w") as z:  # stored: the text is in the file as is
        z.writestr("ptb/ptb.valid.txt", "a b c\n" * 50)
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"a b c") + 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"ptb.zip is a corrupt zip file \(Bad CRC-32.*\); "
                                         r"replace it with an intact copy"):
        load_ptb("valid", path=archive)
    archive.write_bytes(bytes(raw[:40]))
    with pytest.raises(ValueError, match=r"ptb.zip is a corrupt zip file"):
        load_ptb("valid", path=archive)


def test_ptb_zip_without_the_split_names_the_member(tmp_path):
    archive = tmp_path / "ptb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ptb/ptb.train.txt", "a\n")
    with pytest.raises(ValueError, match=r"ptb.zip has no member 'ptb/ptb.test.txt'; is it the "
                                         r"right archive\?"):
        load_ptb("test", path=archive)


def test_mode_and_split_messages_list_the_choices():
    with pytest.raises(ValueError) as err:
        get_tokenizer("chars")
    assert str(err.value) == "mode must be one of 'char', 'jieba', 'word', got 'chars'"
    with pytest.raises(ValueError) as err:
        load_ptb("dev")
    assert str(err.value) == "split must be one of 'train', 'valid', 'test', got 'dev'"


@pytest.mark.parametrize("tokenizer", [words, chars])
def test_tokenizers_refuse_non_text(tokenizer):
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tokenizer(b"a b")
