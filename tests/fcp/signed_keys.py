"""Signed keys through pyfreenet3's Python API: genkey (GenerateSSK) gives a
USK pair; put() publishes editions 0 and 1 under the insert URI at one node;
get() of the request URI at edition -1 (the newest) at another node returns
edition 1; invertprivate() of the insert URI gives the request URI; a KSK put at one node is got at the other.

Usage: signed_keys.py INSERT_PORT FETCH_PORT
Prints one line per check, "ok ..." or "FAIL ...", and exits non-zero on any failure.
"""
import sys

import fcp3.node


def main():
    insert_port, fetch_port = int(sys.argv[1]), int(sys.argv[2])
    inserter = fcp3.node.FCPNode(port=insert_port, logfile=sys.stderr, verbosity=fcp3.node.ERROR)
    fetcher = fcp3.node.FCPNode(port=fetch_port, logfile=sys.stderr, verbosity=fcp3.node.ERROR)
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("ok " if ok else "FAIL ") + what, flush=True)
        failures += 0 if ok else 1

    pub, priv = inserter.genkey(name="notes", usk=True)
    check(pub.split("freenet:")[-1].startswith("USK@") and pub.endswith("/notes/0"), "genkey gives a USK pair")
    # invertprivate: a GetCHKOnly put under the insert key (freesitemgr
    # runs it for a site whose private key the user gives).
    inverted = inserter.invertprivate(priv)
    check(inverted.split("freenet:")[-1] == pub.split("freenet:")[-1], f"invertprivate gives the request URI: {inverted}")
    for edition in (0, 1):
        key = priv[: -len("/0")] + f"/{edition}"
        got = inserter.put(key, data=f"notes, edition {edition}".encode(), mimetype="text/plain")
        check(got.endswith(f"/notes/{edition}") and ",AQEB" not in got, f"put edition {edition} -> request URI")
    newest = pub[: -len("/0")] + "/-1"
    _mimetype, data, _msg = fetcher.get(newest)
    check(data == b"notes, edition 1", f"get -1 at the other node: {data!r}")
    inserter.put("KSK@pyfreenet-note", data=b"a keyword note", mimetype="text/plain")
    _mimetype, data, _msg = fetcher.get("KSK@pyfreenet-note")
    check(data == b"a keyword note", f"KSK round trip: {data!r}")

    inserter.shutdown()
    fetcher.shutdown()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
