#!/usr/bin/env bash
# Serves a log folder with TensorBoard on the loopback and screenshots its scalars
# page in headless Chromium: a check, in a real browser, that TensorBoard shows
# kiln's curves.
#
# Usage: tensorboard_screenshot.sh LOG_DIR OUT.png [PAGE]
#   PAGE: scalars (default), histograms, images, text, timeseries.
# Needs a Python with tensorboard (KILN_PYTHON, else python3) and Chromium
# (CHROMIUM, else chromium): `apt-get install chromium`.
# Example: cargo run --release --example export, then
#   tensorboard_screenshot.sh target/kiln-examples/export/logs /tmp/tensorboard.png
set -euo pipefail

logdir=$1
out=$2
page=${3:-scalars}
python=${KILN_PYTHON:-python3}
chromium=${CHROMIUM:-chromium}
port=$((20000 + RANDOM % 20000))

"$python" -m tensorboard.main --logdir "$logdir" --host 127.0.0.1 --port "$port" \
    >/tmp/kiln-tensorboard-$port.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

# Up to 60 s for the server to answer.
for _ in $(seq 60); do
    if curl -sf "http://127.0.0.1:$port/data/runs" >/dev/null; then
        break
    fi
    sleep 1
done
runs=$(curl -sf "http://127.0.0.1:$port/data/runs")
echo "tensorboard on 127.0.0.1:$port sees runs: $runs"

# The page loads its data after the document: give it virtual time to fetch and draw.
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1600,1000 --virtual-time-budget=20000 \
    --screenshot="$out" "http://127.0.0.1:$port/#$page" 2>/dev/null
echo "screenshot: $out"
