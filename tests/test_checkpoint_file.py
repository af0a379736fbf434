"""The checkpoint directory and file without a context: lock, leftovers, blobs, commits.

asyncstream.checkpoint.Checkpoint is what a context opens at start(); these cases drive it
directly, so each edge (a planted lock, a half-made file, a failing commit) is one step.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

import pytest

from asyncstream import CheckpointError
from asyncstream._auth import write_meta
from asyncstream.checkpoint import Checkpoint, _DirectoryLock, graph_difference
from asyncstream.stores import checkpoint_store

if TYPE_CHECKING:
    from pathlib import Path

FIX = (
    r"restore the checkpoint directory from a backup, delete it to start afresh \(its state "
    r"is lost\), or point checkpoint\(\) at another directory"
)
GRAPH = ["queue_stream#0", "window 'win'"]


class Gone:
    """Removed from this module by the tests that need a class the program no longer has."""

    def __init__(self, n: int) -> None:
        self.n = n


def _open(directory: Path, graph: list[str] = GRAPH) -> Checkpoint:
    return Checkpoint(directory, fingerprint=graph, batch_interval_ms=1000)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "ck"
    path.mkdir(mode=0o700)
    return path


def test_a_lock_that_is_a_symbolic_link_is_not_followed(directory: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (directory / "lock").symlink_to(target)
    lock = re.escape(str(directory / "lock"))
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint lock '{lock}' cannot be opened \(\[Errno \d+\] .*\); remove it, or "
        r"point checkpoint\(\) at another directory$",
    ):
        _open(directory)
    assert not target.exists()
    assert not (directory / "checkpoint.db").exists()


def test_a_lock_that_is_not_a_regular_file_is_refused(directory: Path) -> None:
    os.mkfifo(directory / "lock", 0o600)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint lock '{re.escape(str(directory / 'lock'))}' is not a regular file "
        r"of this user; remove it, or point checkpoint\(\) at another directory$",
    ):
        _open(directory)
    assert not (directory / "checkpoint.db").exists()


def test_half_made_files_of_a_dead_process_are_removed(directory: Path) -> None:
    for name in ("checkpoint.db.new-0123", "checkpoint.db.new-0123-wal", "notes.txt"):
        (directory / name).write_bytes(b"x")
    _open(directory).close()
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoint.db", "lock", "notes.txt"]


def test_close_is_idempotent_and_frees_the_directory(directory: Path) -> None:
    first = _open(directory)
    first.close()
    first.close()
    assert (directory / "lock").read_bytes() == b""  # no stale pid
    second = _open(directory)
    assert (directory / "lock").read_text() == f"{os.getpid()}\n"
    second.close()


def test_releasing_the_lock_twice_is_harmless(directory: Path) -> None:
    lock = _DirectoryLock(str(directory))
    assert (directory / "lock").read_text() == f"{os.getpid()}\n"
    lock.release()
    lock.release()
    _DirectoryLock(str(directory)).release()  # free again


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ck"
    path.write_text("not a directory")
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint directory '{re.escape(str(path))}' is not a directory; point "
        r"checkpoint\(\) at another directory$",
    ):
        _open(path)
    assert path.read_text() == "not a directory"


def test_an_authentic_header_with_a_malformed_graph_is_a_different_graph(directory: Path) -> None:
    first = _open(directory)
    write_meta(first.conn, first._signer, [("fingerprint", "queue_stream#0")])
    first.close()
    with pytest.raises(
        CheckpointError,
        match=rf"^the checkpoint in '{re.escape(str(directory))}' was written by a different "
        r"graph: operator 1: the checkpoint has nothing \(its graph has 0 operators\), this "
        r"program has queue_stream#0; delete the directory to start afresh \(its state is "
        r"lost\), or point checkpoint\(\) at another directory$",
    ):
        _open(directory)


def test_a_program_with_fewer_operators_is_a_different_graph(directory: Path) -> None:
    _open(directory).close()
    with pytest.raises(
        CheckpointError,
        match=r"graph: operator 2: the checkpoint has window 'win', this program has nothing "
        r"\(it has 1 operators\);",
    ):
        _open(directory, GRAPH[:1])


def test_graph_difference_names_the_first_operator_that_differs() -> None:
    assert graph_difference(["a", "b", "c"], ["a", "x", "c"]) == (
        "operator 2: the checkpoint has b, this program has x"
    )
    assert graph_difference([], ["a"]) == (
        "operator 1: the checkpoint has nothing (its graph has 0 operators), this program has a"
    )


def test_a_blob_table_that_cannot_be_read_is_refused(directory: Path) -> None:
    checkpoint = _open(directory)
    try:
        checkpoint.conn.execute("DROP TABLE asyncstream_blobs")
        db = re.escape(str(directory / "checkpoint.db"))
        with pytest.raises(
            CheckpointError,
            match=rf"^checkpoint file '{db}' cannot be read \(no such table: asyncstream_blobs\): "
            rf"it is truncated or corrupt; {FIX}$",
        ):
            checkpoint.blob("win")
    finally:
        checkpoint.close()


def test_blobs_round_trip_as_json_or_pickle(directory: Path) -> None:
    checkpoint = _open(directory)
    assert checkpoint.blob("win") is None  # nothing committed yet
    blobs = {"source:q": ("source", {"consumed": 2}), "win": ("window", {1000: [Gone(1)]})}
    checkpoint.commit(1000, {"zero_ms": 0}, blobs)
    checkpoint.close()
    again = _open(directory)
    try:
        assert again.blob("source:q") == {"consumed": 2}
        assert [g.n for g in again.blob("win")[1000]] == [1]
        assert again.meta()["batch_time_ms"] == 1000
    finally:
        again.close()


def test_an_authentic_blob_of_a_class_the_program_lost_names_it(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = _open(directory)
    checkpoint.commit(1000, {}, {"win": ("window", Gone(1))})
    checkpoint.close()
    monkeypatch.delattr(sys.modules[__name__], "Gone")
    again = _open(directory)
    try:
        with pytest.raises(
            CheckpointError,
            match=r"^checkpoint file '.*' holds an authentic blob of operator 'win' that cannot "
            r"be loaded \(AttributeError\(.*'Gone'.*\)\): the program no longer has a class or "
            rf"function it uses; bring it back, or {FIX}$",
        ):
            again.blob("win")
    finally:
        again.close()


def test_a_failing_commit_leaves_the_last_one_whole(directory: Path) -> None:
    checkpoint = _open(directory)
    store = checkpoint_store(checkpoint, "counts")
    store.put("a", 1)
    checkpoint.commit(1000, {}, {"win": ("window", [1])})
    store.put("a", 2)
    with pytest.raises(TypeError, match=r"^Object of type object is not JSON serializable$"):
        checkpoint.commit(2000, {"bad": object()}, {"win": ("window", [2])})
    assert not checkpoint.conn.in_transaction
    store.close()  # a store of a checkpoint leaves the checkpoint's connection open
    checkpoint.commit(3000, {}, {"win": ("window", [3])})
    checkpoint.close()
    again = _open(directory)
    try:
        assert again.meta()["batch_time_ms"] == 3000
        assert again.blob("win") == [3]
        assert checkpoint_store(again, "counts").get("a") == 2
    finally:
        again.close()
