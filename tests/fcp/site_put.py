"""A small site inserted through pyfreenet3 on Python 3 and fetched back.

pyfreenet 0.7's own FCPNode.putdir cannot send its ClientPutComplexDir on
Python 3 (node.py's _txMsg hands a str to socket.sendall; see docs/FCP.md),
so the site goes the way that works: FCPNode.put for each file, then the
manifest as a ClientPutComplexDir of redirects, sent through the same
node API (_submitCmd) with the raw command as bytes. Both files come back
byte for byte with FCPNode.get at another node.

usage: site_put.py PUT_PORT GET_PORT DIR FILE...
"""

import os
import sys

import fcp3 as fcp


def main():
    put_port, get_port, site_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    names = sys.argv[4:]
    putter = fcp.node.FCPNode(port=put_port)
    getter = fcp.node.FCPNode(port=get_port)
    try:
        content = {n: open(os.path.join(site_dir, n), "rb").read() for n in names}
        uris = {}
        for n in names:
            mime = "text/html" if n.endswith(".html") else "application/octet-stream"
            uris[n] = putter.put("CHK@", data=content[n], mimetype=mime)
            print("ok put %s %s" % (n, uris[n]))
        lines = ["ClientPutComplexDir", "Identifier=site", "URI=CHK@",
                 "DefaultName=index.html"]
        for i, n in enumerate(names):
            lines += ["Files.%d.Name=%s" % (i, n),
                      "Files.%d.UploadFrom=redirect" % i,
                      "Files.%d.TargetURI=%s" % (i, uris[n])]
        lines.append("EndMessage")
        raw = ("\n".join(lines) + "\n").encode()
        site = putter._submitCmd("site", "ClientPutComplexDir", rawcmd=raw, timeout=300)
        assert site.startswith("CHK@") and site.endswith("/"), site
        print("ok site %s" % site)
        for n in names:
            mime, data, _ = getter.get(site + n, timeout=300)
            assert data == content[n], "%s came back different" % n
            print("ok get %s %s" % (n, mime))
    finally:
        putter.shutdown()
        getter.shutdown()


if __name__ == "__main__":
    main()
