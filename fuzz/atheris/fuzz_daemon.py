#!/usr/bin/env python3
"""atheris target over the irqd daemon's whole message path below the socket.

An in-process irqd.daemon.Daemon (the real class, built the way
irqd.daemon.main builds it, on a listening socket in a private temporary
directory) serves in a background thread.  Each fuzz input becomes one
record sent on a connection to it, with 0-4 eventfds attached (the first
byte of the input says how many; the rest is the record), so the input
goes through recvmsg, the fd accounting, the C dispatcher (wire.c) and the
daemon's Python handlers (devices, irqfds, outputs, dumps, restores),
exactly as a client's record would.

After each input the target sends a NOOP|ACK marker and reads every reply
up to its acknowledgement, and fails (an uncaught exception: atheris
records the input as a crash) when:

* the daemon does not answer within 10 s, or closes the connection, or its
  thread died;
* a reply record is not well framed (a len below 16 or past the record, a
  misaligned message, trailing bytes), or an ERROR / DONE is not the last
  message of its record (abi.md section 3), or a reply has a seq that was
  never sent.

Python code of the irqd package is instrumented (atheris.instrument_imports)
so coverage of the daemon's handlers guides the mutations; the C dispatcher
has its own libFuzzer target (fuzz/fuzz_wire.c).

Run: fuzz/atheris/run.sh [SECONDS] (corpus: fuzz/atheris/corpus, new inputs
into a scratch copy), or directly with libFuzzer options:
    .venv/bin/python fuzz/atheris/fuzz_daemon.py -runs=5000 fuzz/atheris/corpus
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import tempfile
import threading

import atheris

with atheris.instrument_imports(include=["irqd"]):
    from irqd._core import lib

    import irqd.daemon as daemon_mod

HDR = struct.Struct("<IHHII")
MAX_RECORD = lib.IRQD_MAX_RECORD
MARKER = 0xFEEDF00D
RECONNECT_EVERY = 256


class Target:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="irqd-atheris-")
        self.path = os.path.join(self.dir, "irqd.sock")
        args = daemon_mod.build_parser().parse_args(
            ["--socket", self.path, "--max-devices-per-uid", "32", "--max-sources-per-uid", str(64 * 1024),
             "--max-fds-per-uid", "256", "--log-level", "error"])
        import logging
        logging.basicConfig(level=logging.ERROR)
        listener, owned = daemon_mod.open_listener(self.path, 0o600, None)
        self.d = daemon_mod.Daemon(listener, daemon_mod.Limits(args), owned, self.path)
        self.thread = threading.Thread(target=self.d.serve_forever, daemon=True)
        self.thread.start()
        self.sock: socket.socket | None = None
        self.n = 0
        self._setup()

    def connect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        self.sock.connect(self.path)

    def _setup(self) -> None:
        """Device 1 (PERSIST) with ICPs 0-1 and sources 16..79 (edge) and
        80..95 (level): the handle the seeds use."""
        self.connect()
        recs = [HDR.pack(32, lib.IRQD_MSG_CREATE_DEVICE, 1 | 4, 1, 0) + struct.pack("<4I", 3, 0, 2, 0)]
        for s in (0, 1):
            recs.append(HDR.pack(32, lib.IRQD_MSG_CONNECT_VCPU, 5, 2, 0) + struct.pack("<4I", 1, s, 0, 0))
        recs.append(HDR.pack(32, lib.IRQD_MSG_CREATE_ICS, 5, 3, 0) + struct.pack("<4I", 1, 16, 64, 0))
        recs.append(HDR.pack(32, lib.IRQD_MSG_CREATE_ICS, 5, 4, 0) + struct.pack("<4I", 1, 80, 16, 1))
        for irq in range(16, 96):
            recs.append(HDR.pack(80, lib.IRQD_MSG_RTAS, 1, 5, 0)
                        + struct.pack("<4I12I", 1, 1, 3, 1, irq, irq & 1, 5, *[0] * 9))
        for rec in recs:
            self.exchange(rec, [])

    def exchange(self, rec: bytes, fds: list[int]) -> None:
        # the seqs a reply may carry: every header's, an unframed one's zero-padded (abi.md section 3)
        sent_seqs = set()
        off = 0
        while off < len(rec):
            n, _, _, seq, _ = HDR.unpack_from((rec[off:off + 16] + bytes(16))[:16])
            sent_seqs.add(seq)
            if n < 16 or n > len(rec) - off:
                break
            off += (n + 3) & ~3
        if rec:
            try:
                if fds:
                    self.sock.sendmsg([rec], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
                else:
                    self.sock.send(rec)
            except OSError as e:
                if e.errno != 90:  # EMSGSIZE: larger than the socket can carry at all
                    raise
        self.sock.send(HDR.pack(16, lib.IRQD_MSG_NOOP, 5, MARKER, 0))
        while True:
            r, _, _ = select.select([self.sock], [], [], 10)
            if not r:
                raise RuntimeError("the daemon did not answer within 10 s")
            data = self.sock.recv(MAX_RECORD + 64)
            if not data:
                raise RuntimeError("the daemon closed the connection")
            assert len(data) <= MAX_RECORD, f"reply record of {len(data)} bytes"
            off = 0
            done = False
            while off < len(data):
                assert len(data) - off >= 16, f"trailing {len(data) - off} bytes in a reply record"
                n, t, _f, seq, _pid = HDR.unpack_from(data, off)
                assert 16 <= n <= len(data) - off, f"reply len {n} at {off} of {len(data)}"
                nxt = off + ((n + 3) & ~3)
                if t in (lib.IRQD_MSG_ERROR, lib.IRQD_MSG_DONE):
                    assert nxt >= len(data), "an ERROR or DONE is not the last message of its record"
                if seq == MARKER and t == lib.IRQD_MSG_ERROR:
                    assert struct.unpack_from("<i", data, off + 16)[0] == 0
                    done = True
                else:
                    assert seq in sent_seqs, f"reply with seq {seq:#x} that was never sent"
                off = nxt
            if done:
                return

    def one(self, data: bytes) -> None:
        if not self.thread.is_alive():
            raise RuntimeError("the daemon thread died")
        self.n += 1
        if self.n % RECONNECT_EVERY == 0:
            self.connect()    # the connection's non-PERSIST devices go with it
        nfds = data[0] % 5 if data else 0
        rec = data[1:]
        fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(nfds)]
        try:
            self.exchange(rec, fds)
        finally:
            for fd in fds:
                os.close(fd)


TARGET: Target | None = None


def TestOneInput(data: bytes) -> None:
    TARGET.one(data)


def main() -> None:
    global TARGET
    TARGET = Target()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
