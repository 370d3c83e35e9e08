"""Drives pyfreenet3's Python API (fcp3.node.FCPNode) against two Warren nodes.

Usage: api_roundtrip.py INSERT_PORT FETCH_PORT WORKDIR FILE...

For each FILE: put(data=...) at the inserting node, get() at the fetching
node, compare; put(chkonly) gives the same key; put(file=...) (disk upload
proved by FileHash) gives the same key; get(file=...) (disk download after
TestDDA) writes the same bytes. (pyfreenet 0.7's putdir fails under
Python 3 before it sends anything; sites are tested with raw FCP.) Prints one line per check, "ok ..." or
"FAIL ...", and exits non-zero on any failure.
"""
import os
import sys

import fcp3.node


def main():
    insert_port, fetch_port, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    paths = sys.argv[4:]
    inserter = fcp3.node.FCPNode(port=insert_port, logfile=sys.stderr, verbosity=fcp3.node.ERROR)
    fetcher = fcp3.node.FCPNode(port=fetch_port, logfile=sys.stderr, verbosity=fcp3.node.ERROR)
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("ok " if ok else "FAIL ") + what, flush=True)
        failures += 0 if ok else 1

    for path in paths:
        name = os.path.basename(path)
        with open(path, "rb") as f:
            data = f.read()
        uri = inserter.put("CHK@", data=data, mimetype="application/x-test", name=name)
        check(uri.startswith("CHK@") and uri.endswith("/" + name), f"put {name} -> {uri}")
        mimetype, got, _msg = fetcher.get(uri)
        check(got == data, f"get {name}: {len(got)} bytes, same={got == data}")
        # A single-block file has no manifest to carry its type (docs/FCP.md).
        if len(data) > 32 * 1024:
            check(mimetype == "application/x-test", f"get {name}: content type {mimetype}")
        only = inserter.put("CHK@", data=data, mimetype="application/x-test", name=name, chkonly=True)
        check(only == uri, f"chkonly {name} gives the same key")
        from_disk = inserter.put("CHK@", file=os.path.abspath(path), mimetype="application/x-test",
                                 name=name)
        # (pyfreenet names only direct uploads: the disk upload's key has no /name.)
        check(from_disk == uri.rsplit("/", 1)[0], f"disk put {name} gives the same key: {from_disk}")
        out = os.path.join(workdir, "disk-" + name)
        result = fetcher.get(uri, file=out)
        with open(out, "rb") as f:
            on_disk = f.read()
        check(result[1] == out and on_disk == data, f"disk get {name} wrote the same bytes")

    inserter.shutdown()
    fetcher.shutdown()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
