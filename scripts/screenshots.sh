#!/usr/bin/env bash
# Remakes the gateway screenshots in docs/: the status page of a node in a
# small local testnet, and a page with hostile parts shown filtered.
# Needs Chromium (scripts/install-test-deps.sh installs it). Every process it
# starts is stopped by pid (`warren testnet stop`), whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p warren
warren=target/debug/warren
chromium=$(command -v chromium || command -v chromium-browser)
work=$(mktemp -d)
net="$work/net"
cleanup() {
    "$warren" testnet stop --dir "$net" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$warren" testnet --nodes 5 --dir "$net" --detach >/dev/null
node() { python3 -c "import json,sys; print(json.load(open('$net/testnet.json'))['nodes'][$1]['$2'])"; }

site="$work/site"
mkdir -p "$site/css"
cat > "$site/index.html" <<'HTML'
<!doctype html><html><head><meta charset="utf-8"><title>A site on Warren</title>
<link rel="stylesheet" href="css/site.css">
<link rel="preconnect" href="https://tracker.example">
<meta http-equiv="refresh" content="0;url=https://tracker.example/">
<script>fetch('https://tracker.example/beacon')</script></head>
<body><h1>A site on Warren</h1>
<p>Its own stylesheet colours this page. The tracking pixel, the script, the
refresh and the preconnect hint that were in its source are gone, and the
link below leads to a page that asks before leaving Warren.</p>
<p><img src="https://tracker.example/pixel.gif" alt="(a tracking pixel was here)"></p>
<p><a href="https://elsewhere.example/">A link to the open web</a></p>
</body></html>
HTML
cat > "$site/css/site.css" <<'CSS'
body { font: 18px/1.5 Georgia, serif; max-width: 40rem; margin: 2rem auto; background: #f4f1ea; color: #2b2b2b }
h1 { color: #2a6f4e; border-bottom: 3px solid #2a6f4e }
@import url(https://tracker.example/more.css);
CSS
key=$("$warren" insert "$site" --api "$(node 0 api)" --data-dir "$(node 0 data_dir)")
# Some traffic for the chart: a file inserted and fetched around the
# network over half a minute (the chart samples every 5 s).
head -c 3000000 /dev/urandom > "$work/blob.bin"
for i in 1 2 3 4 1 2; do
    blob=$("$warren" insert "$work/blob.bin" --api "$(node 0 api)" --data-dir "$(node 0 data_dir)")
    "$warren" fetch "$blob" -o - --api "$(node $i api)" --data-dir "$(node $i data_dir)" >/dev/null
    "$warren" fetch "${key}index.html" -o - --api "$(node $i api)" --data-dir "$(node $i data_dir)" >/dev/null
    head -c 3000000 /dev/urandom > "$work/blob.bin"
    sleep 5
done

shot() { # url, output
    local profile
    profile=$(mktemp -d)
    "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --window-size=1000,1100 \
        --virtual-time-budget=2000 --screenshot="$2" "$1" >/dev/null 2>&1
    rm -rf "$profile"
}
shot "http://$(node 2 api)/" docs/status-page.png
shot "http://$(node 2 gateway)/${key}" docs/filtered-page.png
echo "wrote docs/status-page.png and docs/filtered-page.png"
