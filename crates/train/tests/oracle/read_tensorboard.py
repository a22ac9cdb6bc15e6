"""Reads a kiln run folder back with TensorBoard's own reader.

Usage: read_tensorboard.py RUN_DIR

For each subfolder (train, validation), loads the event files with
tensorboard.backend.event_processing's EventAccumulator (whose record reader checks
every CRC-32C) and prints one JSON object: {folder: {"scalars": {tag: [[step,
value], ...]}, "histograms": {tag: [[step, num, min, max, sum], ...]}, "images":
{tag: [[step, width, height, png_bytes], ...]}, "texts": {tag: [text, ...]}}}.
"""

import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util


def read(folder):
    acc = ea.EventAccumulator(
        folder,
        size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0, ea.TENSORS: 0},
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}, "images": {}, "texts": {}}
    for tag in tags[ea.SCALARS]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in tags[ea.HISTOGRAMS]:
        out["histograms"][tag] = [
            [e.step, e.histogram_value.num, e.histogram_value.min,
             e.histogram_value.max, e.histogram_value.sum]
            for e in acc.Histograms(tag)
        ]
    for tag in tags[ea.IMAGES]:
        out["images"][tag] = [
            [e.step, e.width, e.height, len(e.encoded_image_string)]
            for e in acc.Images(tag)
        ]
    for tag in tags[ea.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "text":
            out["texts"][tag] = [
                tensor_util.make_ndarray(e.tensor_proto).item().decode()
                for e in acc.Tensors(tag)
            ]
    return out


def main():
    run = sys.argv[1]
    result = {}
    for folder in sorted(os.listdir(run)):
        result[folder] = read(os.path.join(run, folder))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
