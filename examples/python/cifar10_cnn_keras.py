#!/usr/bin/env python3
"""The Keras CIFAR-10 tutorial as written, on the same files kiln's `cifar10_cnn`
example reads: the reference for its accuracy and wall time.

Reads the CIFAR-10 binary version (`data_batch_1..5.bin`, `test_batch.bin`, plain or
gzipped) from a folder instead of downloading, so both programs see the same data.

    pip install tensorflow-cpu
    python3 examples/python/cifar10_cnn_keras.py ../shared/data/cifar10

Prints the per-epoch progress of `model.fit(verbose=2)` and, last, a
`result: {json}` line with the same fields as the kiln example.
"""

import gzip
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers


def read_batch(folder, name):
    for path, opener in ((os.path.join(folder, name), open), (os.path.join(folder, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                raw = np.frombuffer(f.read(), np.uint8).reshape(-1, 3073)
            images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return images, raw[:, 0].astype(np.int64)
    raise FileNotFoundError(os.path.join(folder, name))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10"
    train = [read_batch(folder, f"data_batch_{i}.bin") for i in range(1, 6)]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_test, y_test = read_batch(folder, "test_batch.bin")
    x_train, x_test = x_train / 255.0, x_test / 255.0

    model = tf.keras.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=10, batch_size=64, validation_data=(x_test, y_test), verbose=2)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print("result: " + json.dumps({
        "test_accuracy": round(accuracy, 4), "test_loss": round(loss, 4),
        "train_seconds": round(seconds, 2), "images_per_second": round(10 * len(x_train) / seconds),
        "tensorflow": tf.__version__,
    }))


if __name__ == "__main__":
    main()
