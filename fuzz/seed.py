#!/usr/bin/env python3
"""Seeds the fuzz corpora (issue 8) from the spec's conformance cases.

Usage: fuzz/seed.py CLAIMGATE_BINARY

Writes one input per file into fuzz/corpus/<target>/ (generated, git-ignored),
named by content hash so reruns do not duplicate:
  check_request     each case's check lines, alone and as {"lines": [...]} batches
  event             each case's events, alone and as one array per case
  snapshot          a real snapshot file per case (and one of all cases together),
                    written by `claimgate append` + `claimgate snapshot write`
  snapshot_payload  the same snapshots as the payload harness reads them:
                    8-byte little-endian seq, then the payload after the header
The committed hand-picked seeds in fuzz/seeds/<target>/ are copied in too.
"""

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

FUZZ = pathlib.Path(__file__).resolve().parent
CASES = FUZZ.parent / ".." / "shared" / "spec" / "cases"
CORPUS = FUZZ / "corpus"
SEEDS = FUZZ / "seeds"
# Snapshot file layout (src/index/snapshot.rs): the header's seq field and length.
HEADER_LEN = 64
SEQ_AT = slice(40, 48)
# The snapshot written for each case takes at most this long.
CLI_TIMEOUT_SECONDS = 60


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def snapshot_of(binary, events):
    """A snapshot file's bytes for a ledger holding `events` (refusals are fine)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "data"
        events_file = pathlib.Path(tmp) / "events.json"
        events_file.write_text(json.dumps(events))
        run = dict(capture_output=True, timeout=CLI_TIMEOUT_SECONDS)
        # Exit 3: some events were refused (the others were appended).
        appended = subprocess.run([binary, "append", "--init", "--data", str(data), str(events_file)], **run)
        if appended.returncode not in (0, 3):
            raise subprocess.CalledProcessError(appended.returncode, appended.args, appended.stdout, appended.stderr)
        subprocess.run([binary, "snapshot", "write", "--data", str(data)], check=True, **run)
        (snap,) = sorted((data / "snapshots").glob("index-*.snap"))
        return snap.read_bytes()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    cases = [json.loads(p.read_text()) for p in sorted(CASES.glob("*.json"))]
    if not cases:
        sys.exit(f"no spec cases under {CASES}")
    every_event = []
    for case in cases:
        checks = case.get("checks", [])
        lines = [{k: v for k, v in c.items() if k != "expect"} for c in checks]
        for line in lines:
            put("check_request", compact(line))
            put("check_request", compact({**line, "claim_id": "c-1", "min_seq": 1}))
        for c in checks:
            put("check_request", json.dumps(c, indent=1))
        if lines:
            put("check_request", compact({"lines": lines}))
            put("check_request", compact({"lines": lines, "min_seq": 3}))
        events = case["events"]
        every_event.extend(events)
        for event in events:
            put("event", compact(event))
        put("event", compact(events))
        snap = snapshot_of(binary, events)
        put("snapshot", snap)
        put("snapshot_payload", snap[SEQ_AT] + snap[HEADER_LEN:])
    snap = snapshot_of(binary, every_event)
    put("snapshot", snap)
    put("snapshot_payload", snap[SEQ_AT] + snap[HEADER_LEN:])
    for folder in sorted(SEEDS.glob("*")):
        for seed in sorted(folder.iterdir()):
            put(folder.name, seed.read_bytes())
    for folder in sorted(CORPUS.iterdir()):
        print(f"seeded {folder.name}: {sum(1 for _ in folder.iterdir())} inputs")


if __name__ == "__main__":
    main()
