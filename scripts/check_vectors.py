#!/usr/bin/env python3
"""Recomputes the known-answer vectors of docs/PROTOCOL.md from the text of
that document alone, independently of the Rust code, and compares them with
what the document states.

Checked: CHK blocks (routing and crypto keys, the first and last bytes of a
block), URIs, the location of a key, the noderef text form and wire form, the
metadata (manifest) bytes, the signed-key (SSK, USK, KSK) URIs, routing keys
and block of section 8 (Ed25519 and ChaCha20-Poly1305 from `cryptography`),
the routing-message bytes of Part III and the link
envelope examples of Part II. The constants (payload size, header bytes,
variant orders, close codes) are read from the document too, so a change to
any of them shows up as mismatching vectors.

Not checked here: the Reed-Solomon vectors of section 6.3 and the splitfile
and site URIs of section 6.4, which need reed-solomon-simd's GF(2^16) FFT
(they are pinned by crypto/src/splitfile/fec.rs and crypto/tests/known_answers.rs).

Usage: check_vectors.py [PATH]  (default: docs/PROTOCOL.md beside this script)
Exits 0 when every vector matches, 1 naming each mismatch, 2 when the
document cannot be read as expected (a vector or constant not found).
"""

import base64
import hashlib
import pathlib
import re
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEFAULT_DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
PATTERN_MODULUS = 251  # "pattern(n) = bytes i mod 251"
NONCE = bytes(12)  # "nonce 0^96"
LEN_TRAILER = 4  # "u32_le(len(D))"


class Unreadable(Exception):
    """The document does not say what the script looks for."""


def find(pattern, text, what, flags=0):
    match = re.search(pattern, text, flags)
    if not match:
        raise Unreadable(f"cannot find {what} (pattern {pattern!r})")
    return match


def varint(n):
    """postcard's unsigned LEB128: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(data, pos):
    """Decodes one varint at `pos`; returns (value, next position)."""
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("varint runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unhex(text):
    return bytes.fromhex(re.sub(r"\s+", "", text))


def pattern(n):
    return bytes(i % PATTERN_MODULUS for i in range(n))


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.checked = 0
        self.mismatches = []

    def expect(self, name, stated, computed):
        self.checked += 1
        if stated != computed:
            self.mismatches.append(f"{name}: the document says {stated!r}, the spec gives {computed!r}")

    # ---- Part I ----

    def block_constants(self):
        self.payload = int(find(r"\| `BLOCK_PAYLOAD` \| (\d+) bytes", self.doc, "BLOCK_PAYLOAD").group(1))
        header = find(r"`\[FORMAT_VERSION = (\d+), CIPHER = (\d+)\]`", self.doc, "the block header")
        self.header = bytes([int(header.group(1)), int(header.group(2))])
        block_len = int(find(r"\| `BLOCK_LEN` \| (\d+) =", self.doc, "BLOCK_LEN").group(1))
        self.expect("BLOCK_LEN", block_len, len(self.header) + self.payload + LEN_TRAILER + 16)

    def content(self, description):
        """The bytes a vector's content column names."""
        description = description.strip().strip("`")
        if description == "empty":
            return b""
        quoted = re.fullmatch(r'"(.*)"(?:` \((\d+) bytes\))?', description)
        if quoted:
            data = quoted.group(1).encode()
            if quoted.group(2) is not None:
                self.expect(f"length of {description}", int(quoted.group(2)), len(data))
            return data
        numbered = re.fullmatch(r"pattern\((\d+)\)", description)
        if numbered:
            return pattern(int(numbered.group(1)))
        raise Unreadable(f"unknown content {description!r}")

    def encode_block(self, data):
        """Section 1, step by step: S, K, C and T, B, R."""
        sealed = data + bytes(self.payload - len(data)) + len(data).to_bytes(LEN_TRAILER, "little")
        crypto = hashlib.sha256(sealed).digest()
        cipher_and_tag = ChaCha20Poly1305(crypto).encrypt(NONCE, sealed, self.header)
        block = self.header + cipher_and_tag
        return block, hashlib.sha256(block).digest(), crypto

    def blocks(self):
        rows = re.findall(r"^\| ([^|]+?) \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$", self.doc, re.M)
        if len(rows) < 3:
            raise Unreadable("the CHK block vector table")
        self.keys = {}
        for description, routing, crypto in rows:
            data = self.content(description)
            block, r, k = self.encode_block(data)
            self.expect(f"routing key of {description}", routing, r.hex())
            self.expect(f"crypto key of {description}", crypto, k.hex())
            self.keys[data] = (r, k, block)
        ends = find(r"The block of `\"(.+?)\"` begins `([0-9a-f]+)`\s+and ends \(its tag\) `([0-9a-f]+)`",
                    self.doc, "the block's first and last bytes")
        block = self.encode_block(ends.group(1).encode())[0]
        head, tail = ends.group(2), ends.group(3)
        self.expect("first bytes of the block", head, block[: len(head) // 2].hex())
        self.expect("last bytes (tag) of the block", tail, block[-len(tail) // 2:].hex())

    def extras(self):
        stated = find(r"extra `DATA` = `([A-Za-z0-9_-]+)`, `METADATA` = `([A-Za-z0-9_-]+)`", self.doc, "extras")
        # Section 2: [cipher 1, compression 0, kind (0 DATA, 1 METADATA)].
        self.extra = {"DATA": b64url(bytes([1, 0, 0])), "METADATA": b64url(bytes([1, 0, 1]))}
        self.expect("extra DATA", stated.group(1), self.extra["DATA"])
        self.expect("extra METADATA", stated.group(2), self.extra["METADATA"])

    def uris(self):
        lines = re.findall(r"^(\S[^\n]*?)[ \t]+(CHK@[A-Za-z0-9_-]+,[A-Za-z0-9_-]+,[A-Za-z0-9_-]+)$", self.doc, re.M)
        if len(lines) < 3:
            raise Unreadable("the URI vectors")
        for description, uri in lines:
            r, k, _ = self.encode_block(self.content(description))[1:] + (None,)
            computed = f"CHK@{b64url(r)},{b64url(k)},{self.extra['DATA']}"
            self.expect(f"URI of {description}", uri, computed)

    def location(self):
        stated = find(r"the location of the `\"(.+?)\"` key is `0x([0-9a-f]{16})`", self.doc, "the location vector")
        r = self.encode_block(stated.group(1).encode())[1]
        # Section 4: the first 8 bytes of R, big-endian.
        self.expect("location", stated.group(2), int.from_bytes(r[:8], "big").to_bytes(8, "big").hex())

    def noderef(self):
        version = int(find(r"\(`PROTOCOL_VERSION` = (\d+)", self.doc, "PROTOCOL_VERSION").group(1))
        vector = find(r"Vector: X25519 secret key `\[(\d+); 32\]`, location\s+`0x([0-9a-f]{16})`, address "
                      r"`([^`]+)`:\s+```text\s+(warren-noderef:\S+)\s+```", self.doc, "the noderef vector")
        secret = bytes([int(vector.group(1))] * 32)
        public = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        computed = f"warren-noderef:v{version}:{b64url(public)}:{vector.group(2)}:{vector.group(3)}"
        self.expect("noderef text", vector.group(4), computed)

        wire = find(r"Example: key `([0-9a-f]{2})`×32, location (\d+), `(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)`, "
                    r"version (\d+) encodes as\s+`([0-9a-f]{2})…([0-9a-f]{2}) ([0-9a-f ]+)`", self.doc,
                    "the noderef wire example")
        g = wire.groups()
        # identity 32 raw bytes, location varint, tag 0 = IPv4 + 4 bytes, port varint, version varint.
        computed = (bytes([int(g[0], 16)]) * 32 + varint(int(g[1])) + varint(0)
                    + bytes(int(x) for x in g[2:6]) + varint(int(g[6])) + varint(int(g[7])))
        stated = bytes([int(g[8], 16)]) * 31 + bytes([int(g[9], 16)]) + unhex(g[10])
        self.expect("noderef wire form", stated.hex(), computed.hex())

    def manifest(self):
        vector = find(r"Vector: a directory with one entry `([^`]+)` → the `\"(.+?)\"` key, `(DATA|METADATA)`,\s+"
                      r"content type `([^`]+)`, size (\d+):\s+```text\s+(.+?)\s+```", self.doc, "the manifest vector",
                      re.S)
        path, content, kind, content_type, size, stated_text = vector.groups()
        r, k, _ = self.keys[content.encode()]
        kinds = {"DATA": 0, "METADATA": 1}
        # Section 6.4: version 0x01, Metadata variant 1 (Directory), Vec<DirectoryEntry>.
        variants = re.findall(r"varint\((\d)\) (\w+)Manifest", self.doc)
        directory = next(int(i) for i, name in variants if name == "Directory")
        computed = (bytes([1]) + varint(directory) + varint(1)
                    + varint(len(path)) + path.encode() + r + k + varint(kinds[kind])
                    + bytes([1]) + varint(len(content_type)) + content_type.encode() + varint(int(size)))

        # The document elides the keys as <R: 63fd…edc3>: check the ends, then put the keys in.
        def key_in(match):
            name, head, tail = match.groups()
            key = {"R": r, "K": k}[name]
            self.expect(f"manifest {name} elision", (head, tail), (key.hex()[: len(head)], key.hex()[-len(tail):]))
            return key.hex()

        stated = unhex(re.sub(r"<([RK]): ([0-9a-f]+)…([0-9a-f]+)>", key_in, stated_text))
        self.expect("manifest bytes", stated.hex(), computed.hex())

        # And the other way: decode the stated bytes by hand, field by field.
        try:
            pos = 0
            version, pos = stated[pos], pos + 1
            variant, pos = read_varint(stated, pos)
            count, pos = read_varint(stated, pos)
            path_len, pos = read_varint(stated, pos)
            got_path, pos = stated[pos:pos + path_len].decode(), pos + path_len
            got_r, got_k, pos = stated[pos:pos + 32], stated[pos + 32:pos + 64], pos + 64
            got_kind, pos = read_varint(stated, pos)
            some, pos = stated[pos], pos + 1
            ct_len, pos = read_varint(stated, pos)
            got_ct, pos = stated[pos:pos + ct_len].decode(), pos + ct_len
            got_size, pos = read_varint(stated, pos)
            decoded = (version, variant, count, got_path, got_r, got_k, got_kind, some, got_ct, got_size, len(stated) - pos)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            decoded = f"undecodable: {e}"
        self.expect("manifest decoded by hand", decoded,
                    (1, directory, 1, path, r, k, kinds[kind], 1, content_type, int(size), 0))

    # ---- Part II ----

    def link_envelope(self):
        link_version = int(find(r"\| `LINK_VERSION` \| (\d+) \|", self.doc, "LINK_VERSION").group(1))
        tags = {name: int(tag) for tag, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", self.doc, re.M)}
        codes_text = find(r"Close codes: (.+?)\.\n", self.doc, "the close codes", re.S).group(1)
        codes = {name: int(code) for code, name in re.findall(r"(\d+) `(\w+)`", codes_text)}
        self.expect("varint example 300", find(r"\(`300` = `([0-9a-f ]+)`\)", self.doc, "varint example").group(1),
                    " ".join(f"{b:02x}" for b in varint(300)))
        examples = find(r"Examples \(first bytes of the 512-byte plaintext\): (.+?)\n\n", self.doc,
                        "the envelope examples", re.S).group(1)
        found = re.findall(r"`(\w+)\(([^)]*)\)` =\s+`([0-9a-f ]+) 00…`", examples)
        if len(found) < 3:
            raise Unreadable("the envelope examples")
        for name, arg, stated in found:
            body = varint(tags[name])
            if name in ("Ping", "Pong"):
                body += varint(int(arg))
            elif name == "Close":
                body += varint(codes[arg])
            elif name == "Data":
                data = arg.strip('"').encode()
                body += varint(len(data)) + data
            elif name == "Observed":
                # An IPv4 socket address: variant 0, the 4 bytes, the port.
                host, port = arg.rsplit(":", 1)
                body += varint(0) + bytes(int(o) for o in host.split(".")) + varint(int(port))
            else:
                raise Unreadable(f"no rule for the {name} example")
            self.expect(f"envelope {name}({arg})", unhex(stated).hex(), (bytes([link_version]) + body).hex())

    def ssk(self):
        """Section 8: SSK keys, block, URIs; USK and KSK mapping."""
        sec = self.doc[self.doc.index("### 8. Signed subspace keys"):self.doc.index("## Part II.")]
        block_len = int(find(r"`SSK_BLOCK_LEN` = (\d+) bytes", sec, "SSK_BLOCK_LEN").group(1))
        payload = int(find(r"zero padding to (\d+) bytes", sec, "the SSK payload size").group(1))
        header = find(r"\[SSK_FORMAT_VERSION = (\d+), CIPHER = (\d+)\]", sec, "the SSK header")
        header = bytes([int(header.group(1)), int(header.group(2))])
        name_dom = find(r'N = SHA-256\("([^"]+)" ‖ K ‖ name\)', sec, "the name domain").group(1).encode()
        routing_dom = find(r'R = SHA-256\("([^"]+)" ‖ H ‖ N\)', sec, "the routing domain").group(1).encode()
        key_dom = find(r'E  = SHA-256\("([^"]+)" ‖ K ‖ N\)', sec, "the encryption-key domain").group(1).encode()
        nonce_dom = find(r'IV = SHA-256\("([^"]+)" ‖ E ‖ S\)\[0\.\.12\]', sec, "the nonce domain").group(1).encode()
        sig_dom = find(r'Ed25519-sign\(s, "([^"]+)" ‖ B\)', sec, "the signature domain").group(1).encode()
        ksk_seed = find(r's = SHA-256\("([^"]+)" ‖ keyword\)', sec, "the KSK seed domain").group(1).encode()
        ksk_crypto = find(r'K = SHA-256\("([^"]+)" ‖ keyword\)', sec, "the KSK crypto domain").group(1).encode()
        settings = find(r"base64url `(\w+)` \(request\) or `(\w+)` \(insert\)", sec, "the settings")
        request_settings, insert_settings = b64url(bytes([1, 1, 0])), b64url(bytes([1, 1, 1]))
        self.expect("SSK request settings", settings.group(1), request_settings)
        self.expect("SSK insert settings", settings.group(2), insert_settings)
        inputs = find(r'seed `s` = bytes `00 01 … 1f`, crypto key `K` = bytes `20 21 … 3f`,\s+document name `"(\w+)"`, '
                      r'content `"([^"]+)"` \(kind 0\)', sec, "the SSK vector inputs")
        seed, crypto = bytes(range(32)), bytes(range(0x20, 0x40))
        name, content = inputs.group(1), inputs.group(2).encode()
        sha = lambda *parts: hashlib.sha256(b"".join(parts)).digest()
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

        def keys(pub, k, doc):
            h = sha(pub)
            n = sha(name_dom, k, doc.encode())
            return h, n, sha(routing_dom, h, n)

        h, n, r = keys(public, crypto, name)
        sealed = content + bytes(payload - len(content)) + len(content).to_bytes(2, "little") + bytes([0])
        e = sha(key_dom, crypto, n)
        iv = sha(nonce_dom, e, sealed)[:12]
        body = header + public + n + iv
        body += ChaCha20Poly1305(e).encrypt(iv, sealed, body)
        sig = private.sign(sig_dom + body)
        block = body + sig
        self.expect("SSK block length", block_len, len(block))
        # Rows read "| public key `P` | `hex` |": the label without its symbol.
        table = {re.sub(r" `[^`]+`$", "", label): value
                 for label, value in re.findall(r"^\| ([^|]+?) \| `([0-9a-f]+)` \|$", sec, re.M)}
        for label, value in (("public key", public), ("pk hash", h), ("hashed name", n), ("routing key", r),
                             ("nonce", iv), ("signature", sig), ("SHA-256 of the block", sha(block))):
            stated = table.get(label)
            if stated is None:
                raise Unreadable(f"the SSK vector row {label!r}")
            self.expect(f"SSK {label}", stated, value.hex())
        uris = dict(re.findall(r"^(request|insert) URI\s+(SSK@\S+)$", sec, re.M))
        self.expect("SSK request URI", uris.get("request"),
                    f"SSK@{b64url(h)},{b64url(crypto)},{request_settings}/{name}")
        self.expect("SSK insert URI", uris.get("insert"),
                    f"SSK@{b64url(seed)},{b64url(crypto)},{insert_settings}/{name}")
        usk = find(r"fetches SSK document\s+`([\w-]+)`, at routing key `([0-9a-f]{64})`", sec, "the USK vector")
        self.expect("USK edition document name", usk.group(1), "blog-7")
        self.expect("USK edition routing key", usk.group(2), keys(public, crypto, usk.group(1))[2].hex())
        ksk = find(r"`KSK@([\w-]+)` is the SSK\s+`(SSK@\S+)` at routing key\s+`([0-9a-f]{64})`", sec, "the KSK vector")
        keyword = ksk.group(1)
        kseed, kcrypto = sha(ksk_seed, keyword.encode()), sha(ksk_crypto, keyword.encode())
        kpub = Ed25519PrivateKey.from_private_bytes(kseed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kh, _, kr = keys(kpub, kcrypto, keyword)
        self.expect("KSK request URI", ksk.group(2), f"SSK@{b64url(kh)},{b64url(kcrypto)},{request_settings}/{keyword}")
        self.expect("KSK routing key", ksk.group(3), kr.hex())

    def root_copies(self):
        """Section 6.6: the two root copies of the "Hello, Warren!" root and their SSK pointers."""
        sec = self.doc[self.doc.index("#### 6.6 Root copies"):self.doc.index("### 7. Fetch order")]
        ssk = self.doc[self.doc.index("### 8. Signed subspace keys"):self.doc.index("## Part II.")]
        copy_dom = find(r'K_i  = SHA-256\("([^"]+)" ‖ K ‖ i\)', sec, "the copy key domain").group(1).encode()
        seed_dom = find(r's_i  = SHA-256\("([^"]+)" ‖ K ‖ i\)', sec, "the pointer seed domain").group(1).encode()
        ptr_dom = find(r'P_i  = SHA-256\("([^"]+)" ‖ K ‖ i\)', sec, "the pointer key domain").group(1).encode()
        doc_name = find(r'document name "([^"]+)", kind 0', sec, "the pointer name").group(1).encode()
        name_dom = find(r'N = SHA-256\("([^"]+)" ‖ K ‖ name\)', ssk, "the name domain").group(1).encode()
        routing_dom = find(r'R = SHA-256\("([^"]+)" ‖ H ‖ N\)', ssk, "the routing domain").group(1).encode()
        key_dom = find(r'E  = SHA-256\("([^"]+)" ‖ K ‖ N\)', ssk, "the encryption-key domain").group(1).encode()
        nonce_dom = find(r'IV = SHA-256\("([^"]+)" ‖ E ‖ S\)\[0\.\.12\]', ssk, "the nonce domain").group(1).encode()
        sig_dom = find(r'Ed25519-sign\(s, "([^"]+)" ‖ B\)', ssk, "the signature domain").group(1).encode()
        payload = int(find(r"zero padding to (\d+) bytes", ssk, "the SSK payload size").group(1))
        header = find(r"\[SSK_FORMAT_VERSION = (\d+), CIPHER = (\d+)\]", ssk, "the SSK header")
        ssk_header = bytes([int(header.group(1)), int(header.group(2))])
        content = find(r'for the root `"(.+?)"` of section 1', sec, "the root copy vector input").group(1).encode()
        sha = lambda *parts: hashlib.sha256(b"".join(parts)).digest()
        sealed = content + bytes(self.payload - len(content)) + len(content).to_bytes(LEN_TRAILER, "little")
        k = sha(sealed)
        rows = re.findall(r"^\| (\d) \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$", sec, re.M)
        if len(rows) != 2:
            raise Unreadable("the root copy vector table")

        def ssk_block(seed, crypto, name, content):
            private = Ed25519PrivateKey.from_private_bytes(seed)
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            n = sha(name_dom, crypto, name)
            routing = sha(routing_dom, sha(public), n)
            plain = content + bytes(payload - len(content)) + len(content).to_bytes(2, "little") + bytes([0])
            e = sha(key_dom, crypto, n)
            iv = sha(nonce_dom, e, plain)[:12]
            body = ssk_header + public + n + iv
            body += ChaCha20Poly1305(e).encrypt(iv, plain, body)
            return routing, body + private.sign(sig_dom + body)

        for index, stated_r, stated_p, stated_sha in rows:
            i = bytes([int(index)])
            copy = self.header + ChaCha20Poly1305(sha(copy_dom, k, i)).encrypt(NONCE, sealed, self.header)
            r_i = sha(copy)
            pointer_key, block = ssk_block(sha(seed_dom, k, i), sha(ptr_dom, k, i), doc_name, r_i)
            self.expect(f"root copy {index} R_i", stated_r, r_i.hex())
            self.expect(f"root copy {index} pointer key", stated_p, pointer_key.hex())
            self.expect(f"root copy {index} pointer block", stated_sha, sha(block).hex())

        # Root shards: shard 0 of the same root (one piece, so the piece is
        # the content zero-padded).
        shard_seed = find(r's_j  = SHA-256\("([^"]+)" ‖ K ‖ j\)', sec, "the shard seed domain").group(1).encode()
        shard_key = find(r'P_j  = SHA-256\("([^"]+)" ‖ K ‖ j\)', sec, "the shard key domain").group(1).encode()
        shard_name = find(r'document name\s+"([^"]+)", kind 0, content k', sec, "the shard name").group(1).encode()
        piece_len = int(find(r"pieces\s+k\s+= max\(1, ceil\(\|C\| / (\d+)\)\)", sec, "the piece size").group(1))
        min_checks = int(find(r"checks\s+m\s+= max\((\d+), 3 k\)", sec, "the fewest checks").group(1))
        vector = find(r"\(k = 1, m = (\d+)\): shard 0 has routing key\s+`([0-9a-f]{64})` and its block\s+"
                      r"SHA-256 `([0-9a-f]{64})`", sec, "the shard vector")
        self.expect("root shard vector checks", int(vector.group(1)), min_checks)
        j = bytes([0])
        layout = bytes([1, min_checks]) + len(content).to_bytes(2, "big")
        piece = content + bytes(piece_len - len(content))
        routing, block = ssk_block(sha(shard_seed, k, j), sha(shard_key, k, j), shard_name, layout + piece)
        self.expect("root shard 0 routing key", vector.group(2), routing.hex())
        self.expect("root shard 0 block", vector.group(3), sha(block).hex())

    # ---- Part III ----

    def routing_messages(self):
        part3 = self.doc[self.doc.index("## Part III"):]
        wire_version = int(find(r"WIRE_VERSION \(1 byte, = (\d+)\)", part3, "WIRE_VERSION").group(1))
        table = re.findall(r"^\| `(\w+)` \| ([a-z, ]+) \| ", part3, re.M)
        fields = {name: [f.strip() for f in spec.split(",")] for name, spec in table}
        order = [name for name, _ in table]
        inputs = find(r"All use\s+id `0x([0-9a-f]+)` \(varint `([0-9a-f]+)`\), key bytes `00 01 … 1f`\s+and block "
                      r"`\"(\w+)\"`", part3, "the routing vectors' inputs")
        message_id, id_varint, block = int(inputs.group(1), 16), inputs.group(2), inputs.group(3).encode()
        self.expect("routing id varint", id_varint, varint(message_id).hex())
        vectors = re.findall(r"^\| `(\w+)(?: \{ (\w+): ([^}]+) \})?` \| `([0-9a-f ]+)` \|$", part3, re.M)
        # Messages that carry a packed noderef (the opennet ones) are pinned in
        # node/src/wire.rs's tests; the document pins every other one.
        pinned = [name for name in order if "noderef" not in fields[name]]
        self.expect("routing vectors: one per message without a noderef, in order",
                    [v[0] for v in vectors], pinned)
        for name, field, value, stated in vectors:
            values = {"id": varint(message_id), "key": bytes(range(32)), "block": varint(len(block)) + block}
            if field == "htl":
                values["htl"] = bytes([int(value)])
            computed = bytes([wire_version]) + varint(order.index(name)) + b"".join(values[f] for f in fields[name])
            self.expect(f"routing message {name}", unhex(stated).hex(), computed.hex())
        prefix = find(r"A `DataFound` carrying a full 32,790-byte block begins\s+`([0-9a-f ]+)`", part3,
                      "the full-block prefix").group(1)
        computed = (bytes([wire_version]) + varint(order.index("DataFound")) + varint(message_id)
                    + varint(len(self.header) + self.payload + LEN_TRAILER + 16))
        self.expect("full-block DataFound prefix", unhex(prefix).hex(), computed.hex())

    def run(self):
        for step in (self.block_constants, self.blocks, self.extras, self.uris, self.location, self.noderef,
                     self.manifest, self.ssk, self.root_copies, self.link_envelope, self.routing_messages):
            try:
                step()
            except (ValueError, KeyError, IndexError, StopIteration) as e:
                # The document's parts contradict each other (a content
                # larger than the payload, a field with no value...).
                self.mismatches.append(f"{step.__name__}: the document is inconsistent: {e!r}")


def main():
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DOC
    checker = Checker(path.read_text(encoding="utf-8"))
    try:
        checker.run()
    except Unreadable as e:
        print(f"check_vectors: {path}: {e}", file=sys.stderr)
        return 2
    for mismatch in checker.mismatches:
        print(f"MISMATCH {mismatch}", file=sys.stderr)
    if checker.mismatches:
        print(f"check_vectors: {len(checker.mismatches)} of {checker.checked} values in {path} do not match",
              file=sys.stderr)
        return 1
    print(f"check_vectors: {checker.checked} values in {path} recomputed from the spec: all match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
