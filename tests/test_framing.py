"""LineFramer: bulk line splitting, line ends, partial and over-long lines, decoding."""

from __future__ import annotations

import codecs
import itertools
from typing import TYPE_CHECKING

import pytest
from helpers import make_events
from hypothesis import given
from hypothesis import strategies as st

from asyncstream._framing import LineCounters, LineFramer, check_text_options

if TYPE_CHECKING:
    from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Buffer


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    out.extend(framer.flush())
    return out


# -- line ends ----------------------------------------------------------------------------


def test_splits_on_newline_in_one_chunk() -> None:
    f = LineFramer()
    assert f.feed(b"a\nbb\n\nccc\n") == ["a", "bb", "", "ccc"]
    assert f.flush() == []
    assert f.counters.lines == 4
    assert f.counters.bytes == 10


def test_crlf_line_ends_are_stripped_but_lone_cr_is_kept() -> None:
    f = LineFramer()
    assert f.feed(b"a\r\nb\rc\r\nd\r\r\n\r\n") == ["a", "b\rc", "d\r", ""]


def test_crlf_split_between_chunks() -> None:
    f = LineFramer()
    assert f.feed(b"one\r") == []
    assert f.feed(b"\ntwo\r\n") == ["one", "two"]


def test_partial_line_waits_for_its_end() -> None:
    f = LineFramer()
    assert f.feed(b"hel") == []
    assert f.pending_bytes == 3
    assert f.feed(b"lo wor") == []
    assert f.feed(b"ld\nnext") == ["hello world"]
    assert f.pending_bytes == 4
    assert f.feed(b"\n") == ["next"]
    assert f.pending_bytes == 0


def test_flush_emits_the_partial_last_line() -> None:
    f = LineFramer()
    assert f.feed(b"a\nlast") == ["a"]
    assert f.flush() == ["last"]
    assert f.flush() == []  # nothing left


def test_flush_strips_a_trailing_cr() -> None:
    f = LineFramer()
    f.feed(b"last\r")
    assert f.flush() == ["last"]


def test_empty_chunk_is_a_no_op() -> None:
    f = LineFramer()
    assert f.feed(b"") == []
    assert f.counters.bytes == 0


def test_pending_line_then_chunk_of_many_lines_keeps_order() -> None:
    f = LineFramer()
    f.feed(b"x" * 10)
    assert f.feed(b"y\n1\n2\n3\ntail") == ["x" * 10 + "y", "1", "2", "3"]
    assert f.flush() == ["tail"]


# -- decoding ------------------------------------------------------------------------------


def test_invalid_utf8_is_replaced_under_replace() -> None:
    events, infos = make_events()
    f = LineFramer(errors="replace", events=events)
    assert f.feed(b"ok\nbad \xff\xfe here\n\xe2\x82\n") == ["ok", "bad \ufffd\ufffd here", "\ufffd"]
    assert f.counters.decode_errors == 0
    assert infos == []


def test_invalid_utf8_under_strict_skips_only_that_line_and_reports_it() -> None:
    events, infos = make_events()
    f = LineFramer(errors="strict", events=events, origin="10.0.0.1:5")
    assert f.feed(b"ok\nbad \xff\nalso ok\n") == ["ok", "also ok"]
    assert f.counters.decode_errors == 1
    assert f.counters.lines == 2
    assert [i.kind for i in infos] == ["decode"]
    assert infos[0].detail == (
        "skipped an undecodable line from 10.0.0.1:5: 'utf-8' codec can't decode byte 0xff "
        "in position 4: invalid start byte (errors='strict'; use errors='replace' to keep "
        "such lines)"
    )
    assert infos[0].extra == {"origin": "10.0.0.1:5"}


def test_strict_undecodable_line_spread_over_chunks_is_skipped() -> None:
    events, infos = make_events()
    f = LineFramer(errors="strict", events=events)
    assert f.feed(b"a\xe2") == []
    assert f.feed(b"\x28\xa1b\r\nfine\r\n") == ["fine"]
    assert f.counters.decode_errors == 1
    assert infos[0].detail.startswith("skipped an undecodable line: 'utf-8' codec")


def test_multibyte_character_split_across_chunks_is_decoded() -> None:
    f = LineFramer(errors="strict")
    euro = "€".encode()
    assert f.feed(b"price " + euro[:1]) == []
    assert f.feed(euro[1:] + b"5\n") == ["price €5"]


def test_other_error_handlers_are_passed_to_decode() -> None:
    f = LineFramer(errors="backslashreplace")
    assert f.feed(b"a\xffb\n") == ["a\\xffb"]
    g = LineFramer(errors="ignore")
    assert g.feed(b"a\xffb\n") == ["ab"]


def test_latin1_decodes_every_byte() -> None:
    f = LineFramer(encoding="latin-1", errors="strict")
    assert f.feed(b"caf\xe9\r\n") == ["café"]


class _SwallowingCodec:
    """A test codec whose 'replace' decoding eats the newline after a 0xff byte."""

    @staticmethod
    def decode(data: Buffer, errors: str = "strict") -> tuple[str, int]:
        raw = bytes(data)
        if b"\xff" in raw:
            if errors == "strict":
                msg = "swallow-test"
                raise UnicodeDecodeError(msg, raw, raw.index(b"\xff"), 1, "bad")
            text = raw.replace(b"\xff\n", b"?").replace(b"\xff", b"?").decode("latin-1")
            return text, len(raw)
        return raw.decode("latin-1"), len(raw)

    @staticmethod
    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return text.encode("latin-1", errors), len(text)


def _search(name: str) -> codecs.CodecInfo | None:
    if name == "swallow_test":
        return codecs.CodecInfo(_SwallowingCodec.encode, _SwallowingCodec.decode, name=name)
    return None


@pytest.fixture
def swallowing_codec() -> Iterator[str]:
    codecs.register(_search)
    try:
        yield "swallow_test"
    finally:
        codecs.unregister(_search)


def test_codec_that_eats_a_newline_falls_back_to_per_line_decoding(
    swallowing_codec: str,
) -> None:
    f = LineFramer(encoding=swallowing_codec, errors="replace")
    # Decoded as one region the codec would give "a?b": two lines merged into one.
    assert f.feed(b"a\xff\nb\nc\n") == ["a?", "b", "c"]


# -- over-long lines -----------------------------------------------------------------------


def test_ten_megabyte_line_without_newline_is_dropped_and_memory_stays_bounded() -> None:
    events, infos = make_events()
    limit = 1 << 20
    f = LineFramer(max_line_bytes=limit, events=events, origin="peer:1")
    assert f.feed(b"before\n") == ["before"]
    chunk = b"x" * 65536
    for _ in range(160):  # 10 MiB, no newline
        assert f.feed(chunk) == []
        assert f.pending_bytes <= limit
    assert f.pending_bytes == 0  # dropped, not buffered
    assert f.counters.dropped_lines == 1
    assert f.feed(b"yyy\nafter\n") == ["after"]  # the rest of the long line is discarded
    assert f.flush() == []
    assert f.counters.dropped_lines == 1
    assert [i.kind for i in infos] == ["line_too_long"]
    assert infos[0].detail == "dropped a line longer than max_line_bytes=1048576 from peer:1"
    assert infos[0].extra == {"origin": "peer:1", "max_line_bytes": 1048576}


def test_line_of_exactly_max_bytes_is_kept_one_more_is_dropped() -> None:
    f = LineFramer(max_line_bytes=4)
    assert f.feed(b"abcd\nabcde\nok\n") == ["abcd", "ok"]
    assert f.counters.dropped_lines == 1


def test_over_long_line_completed_by_a_later_chunk_is_dropped() -> None:
    f = LineFramer(max_line_bytes=5)
    assert f.feed(b"abc") == []
    assert f.feed(b"def\nnext\n") == ["next"]
    assert f.counters.dropped_lines == 1
    assert f.pending_bytes == 0


def test_over_long_line_ending_in_the_last_newline_of_a_chunk() -> None:
    f = LineFramer(max_line_bytes=3)
    f.feed(b"abc")
    assert f.feed(b"d\n") == []
    assert f.feed(b"ok\n") == ["ok"]


def test_discarded_line_ending_at_the_only_newline_of_a_chunk() -> None:
    f = LineFramer(max_line_bytes=3)
    assert f.feed(b"abcdef") == []
    assert f.feed(b"gh\nxy") == []
    assert f.flush() == ["xy"]
    assert f.counters.dropped_lines == 1


def test_over_long_partial_line_at_eof_is_not_emitted() -> None:
    f = LineFramer(max_line_bytes=3)
    f.feed(b"ok\nabcdef")
    assert f.flush() == []
    assert f.counters.dropped_lines == 1


def test_only_over_long_lines_in_a_chunk() -> None:
    f = LineFramer(max_line_bytes=2)
    assert f.feed(b"abc\ndef\n") == []
    assert f.counters.dropped_lines == 2


def test_counters_can_be_shared_between_framers() -> None:
    shared = LineCounters()
    a = LineFramer(counters=shared)
    b = LineFramer(counters=shared)
    a.feed(b"1\n2\n")
    b.feed(b"3\n")
    assert shared.as_dict() == {"lines": 3, "bytes": 6, "dropped_lines": 0, "decode_errors": 0}


# -- chunking never changes the result -------------------------------------------------------


def _reference(data: bytes, limit: int) -> list[str]:
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    out = []
    for p in parts:
        if len(p) > limit:
            continue
        if p.endswith(b"\r"):
            p = p[:-1]
        out.append(p.decode("utf-8", "replace"))
    return out


@given(
    data=st.lists(
        st.sampled_from([b"a", b"bc", b"\n", b"\r\n", b"\r", b"\xff", "é".encode(), b"0123456"]),
        max_size=40,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    limit=st.integers(min_value=1, max_value=12),
)
def test_any_chunking_gives_the_same_lines_as_splitting_the_whole(
    data: bytes, cuts: list[int], limit: int
) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    f = LineFramer(max_line_bytes=limit)
    assert feed_all(f, chunks) == _reference(data, limit)
    assert f.pending_bytes == 0


# -- options ---------------------------------------------------------------------------------


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^unknown encoding 'nope'; use a codec name such as 'utf-8'$"
    ):
        LineFramer(encoding="nope")


def test_encoding_without_single_byte_newline_is_refused() -> None:
    msg = (
        r"^encoding 'utf-16' does not encode '\\n' as the single byte 0x0a, so lines cannot be "
        r"split in bytes; use an ASCII-compatible encoding such as 'utf-8'$"
    )
    with pytest.raises(ValueError, match=msg):
        LineFramer(encoding="utf-16")


def test_unknown_error_handler_is_refused() -> None:
    msg = (
        r"^unknown errors handler 'bogus'; use 'strict', 'replace', 'ignore', "
        r"'backslashreplace' or 'surrogateescape'$"
    )
    with pytest.raises(ValueError, match=msg):
        LineFramer(errors="bogus")


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_line_bytes_must_be_a_positive_int(bad: object) -> None:
    msg = rf"^max_line_bytes must be a whole number of bytes >= 1, got {bad!r}$"
    with pytest.raises(ValueError, match=msg):
        LineFramer(max_line_bytes=bad)  # type: ignore[arg-type]


def test_check_text_options_reports_split_safety() -> None:
    assert check_text_options("UTF8", "strict", 10) == ("utf-8", True)
    assert check_text_options("shift_jis", "strict", 10) == ("shift_jis", False)


def test_strict_without_events_only_counts() -> None:
    f = LineFramer(errors="strict")
    assert f.feed(b"\xff\nok\n") == ["ok"]
    assert f.counters.decode_errors == 1


def test_chunk_longer_than_the_limit_made_of_short_lines_is_kept() -> None:
    f = LineFramer(max_line_bytes=4)
    assert f.feed(b"abc\ndef\nghij\n") == ["abc", "def", "ghij"]
    assert f.counters.dropped_lines == 0
