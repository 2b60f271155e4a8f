"""Streams to and from a host through a command (operations/transfer.py), on pyinfra's real @local
connector: the bytes arrive whole and hashed, a new remote file is 0600 in a 0700 directory, a failing
command is an error naming why, and a long copy says how far it is."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from operations import transfer


@pytest.fixture
def local():
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return state, inventory.get_host("@local")


def test_download_and_upload_stream_every_byte(local, tmp_path):
    state, host = local
    data = os.urandom(3 * transfer.CHUNK + 12345)
    source = tmp_path / "source.rdb"
    source.write_bytes(data)
    received = io.BytesIO()
    sha, size = transfer.download(state, host, str(source), received, {}, size=len(data))
    assert (sha, size, received.getvalue()) == (hashlib.sha256(data).hexdigest(), len(data), data)
    target = tmp_path / "stage" / "appendonlydir" / "x.aof"
    with open(source, "rb") as handle:
        sha, size = transfer.upload(state, host, handle, str(target), {}, mkdir=True)
    assert sha == hashlib.sha256(data).hexdigest() and target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(target.parent.stat().st_mode) == 0o700


def test_a_failing_command_is_an_error_saying_why(local, tmp_path):
    state, host = local
    with pytest.raises(transfer.TransferError, match="No such file or directory"):
        transfer.download(state, host, str(tmp_path / "missing"), io.BytesIO(), {}, what="backup copy")
    # the host's command fails before (small) or while (large: a broken pipe here) the data goes: either
    # way the error is the host's own
    for data in (b"x", os.urandom(8 * transfer.CHUNK)):
        with pytest.raises(transfer.TransferError, match="upload failed on the host: .*cannot create"):
            transfer.upload(state, host, io.BytesIO(data), str(tmp_path / "no" / "dir" / "f"), {}, what="upload")


def test_a_long_copy_logs_its_progress(local, tmp_path, monkeypatch, caplog):
    state, host = local
    monkeypatch.setattr(transfer, "PROGRESS_SECONDS", 0.0)
    source = tmp_path / "big"
    source.write_bytes(os.urandom(4 * transfer.CHUNK))
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        transfer.download(state, host, str(source), io.BytesIO(), {}, size=4 * transfer.CHUNK, what="backup copy")
    said = [r.getMessage() for r in caplog.records if "backup copy" in r.getMessage()]
    assert said and "of 4.0 MiB" in said[-1] and "MiB/s" in said[-1], said
