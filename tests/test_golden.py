"""Golden byte vectors (tests/golden/*.dump): decode each record and compare
with its JSON; encode the JSON and compare with the bytes."""

from __future__ import annotations

import glob
import json
import os

import pytest
from pyroute2.common import load_dump

from irqd import protocol

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
FILES = sorted(glob.glob(os.path.join(GOLDEN, "*.dump")))


def load(path: str) -> tuple[bytes, list]:
    meta: dict = {}
    with open(path) as f:
        data = load_dump(f, meta)
    return data, json.loads(meta["application/json"])


def test_there_are_golden_vectors_for_every_message_type():
    seen: set[tuple[int, bool]] = set()
    for path in FILES:
        _, expected = load(path)
        for m in expected:
            seen.add((m["header"]["type"], bool(m["header"]["flags"] & protocol.F_REQUEST)))
    wanted = {(t, True) for t in protocol.REQUEST_CLASSES} | {(t, False) for t in protocol.REPLY_CLASSES}
    assert wanted - seen == set()


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-5] for p in FILES])
def test_golden_vector_decodes_to_its_json(path):
    data, expected = load(path)
    got = [json.loads(json.dumps(protocol.dump(m))) for m in protocol.decode_record(data)]
    assert got == expected


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-5] for p in FILES])
def test_golden_json_encodes_to_its_bytes(path):
    data, expected = load(path)
    out = b""
    for m in expected:
        b = protocol.load(m)
        out += b + bytes(-len(b) % 4)
    assert out.hex(":") == data.hex(":")


def test_golden_files_are_up_to_date(tmp_path):
    """make_golden.py regenerates exactly the committed files."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", os.path.join(GOLDEN, "make_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = mod.write_all(str(tmp_path))
    assert sorted(n + ".dump" for n in names) == sorted(os.path.basename(p) for p in FILES)
    for n in names:
        with open(tmp_path / (n + ".dump")) as a, open(os.path.join(GOLDEN, n + ".dump")) as b:
            assert a.read() == b.read(), n
