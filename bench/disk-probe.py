#!/usr/bin/env python3
"""How a large file written or deleted beside the ledger delays its fsyncs.

One thread appends 3,000 bytes and calls fdatasync in a loop (a ledger
committing batches) while the main thread either writes a 60 MiB file
(a snapshot), syncing it every 0, 8 or 1 MiB, or deletes a 100 MiB file at
once or shrunk 2 MiB at a time. Prints the fdatasync latencies seen meanwhile.
consensus/src/paced.rs chose its constants from these figures.

    python3 bench/disk-probe.py [DIR]   # DIR: a folder on the ledger's disk (default .)
"""

import os
import sys
import threading
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
BIG = os.path.join(DIR, "disk-probe.big")
SMALL = os.path.join(DIR, "disk-probe.small")
MIB = 1 << 20


def ledger(stop, latencies):
    fd = os.open(SMALL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            os.write(fd, b"y" * 3000)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)


def beside_the_ledger(action):
    """Runs `action` while the ledger loop runs; returns (its ms, fsync latencies)."""
    stop, latencies = threading.Event(), []
    thread = threading.Thread(target=ledger, args=(stop, latencies))
    thread.start()
    time.sleep(0.2)
    first = len(latencies)
    started = time.perf_counter()
    action()
    took = time.perf_counter() - started
    time.sleep(0.2)
    stop.set()
    thread.join()
    return took * 1e3, sorted(latencies[first:])


def write_big(sync_every_mib, mib=60):
    fd = os.open(BIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    block, unsynced = b"x" * (64 << 10), 0
    for _ in range(mib * 16):
        os.write(fd, block)
        unsynced += len(block)
        if sync_every_mib and unsynced >= sync_every_mib * MIB:
            os.fdatasync(fd)
            unsynced = 0
    os.fsync(fd)
    os.close(fd)


def delete_big(step_mib):
    if step_mib:
        fd = os.open(BIG, os.O_WRONLY)
        size = os.fstat(fd).st_size
        while size > 0:
            size = max(0, size - step_mib * MIB)
            os.ftruncate(fd, size)
        os.close(fd)
    os.unlink(BIG)


def report(label, took_ms, latencies):
    p99 = latencies[int(len(latencies) * 0.99)] * 1e3
    print(f"{label:42s} {took_ms:6.0f} ms; fdatasync meanwhile: "
          f"p99 {p99:5.1f} ms, max {latencies[-1] * 1e3:5.1f} ms (n={len(latencies)})")


def main():
    try:
        for _ in range(3):
            for every in (0, 8, 1):
                took, latencies = beside_the_ledger(lambda: write_big(every))
                report(f"write 60 MiB, synced every {every} MiB", took, latencies)
                os.unlink(BIG)
                time.sleep(0.5)
            for step in (0, 2):
                write_big(8, mib=100)
                time.sleep(1)
                took, latencies = beside_the_ledger(lambda: delete_big(step))
                report(f"delete 100 MiB, shrunk {step} MiB at a time", took, latencies)
    finally:
        for path in (BIG, SMALL):
            if os.path.exists(path):
                os.unlink(path)


if __name__ == "__main__":
    main()
