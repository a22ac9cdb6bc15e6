#!/usr/bin/env python3
"""TensorFlow's "basic regression" tutorial (its `dnn_model`) on the file kiln's
`auto_mpg` example reads, and on the same split: the reference for its test MAE.

    pip install tensorflow-cpu pandas
    python3 examples/python/auto_mpg_keras.py [examples/data/auto_mpg.json] [--seed N]

The tutorial's program as written, but for where its rows come from: the records of
`auto_mpg.json` (the UCI table with the 8 cars that lack MPG); the split is kiln's
`split(n, 0.16, 0.2, seed 0)` over the records with an MPG, recomputed here
(SplitMix64, as `crates/data/src/rng.rs`), in place of the tutorial's
`sample(frac=0.8, random_state=0)` and `validation_split=0.2`. Then, as the tutorial:
rows with a missing value dropped (`dropna`, which removes the cars without
horsepower), `Origin` one-hot, the model year as a number, a `Normalization` layer
adapted to the training features, Dense(64, relu), Dense(64, relu), Dense(1), mean
absolute error, Adam at 0.001, 100 epochs of batches of 32.

Prints the split it used and, last, a `result: {json}` line with `test_mae`.
"""

import json
import math
import os
import sys
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow.keras import layers

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def hash3(a, b, c):
    x = mix64((a ^ GOLDEN) & MASK)
    x = mix64(((x + b) & MASK) ^ GOLDEN)
    return mix64((x + c) & MASK)


class Rng:
    """kiln's `Rng` (SplitMix64) and its Fisher-Yates shuffle."""

    def __init__(self, seed, stream):
        self.state = hash3(seed, stream, 0x5EED)

    def next_u64(self):
        self.state = (self.state + GOLDEN) & MASK
        return mix64(self.state)

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def kiln_split(n, validation, test, seed):
    """kiln's `split::split`: (train, validation, test) indices, each sorted."""
    order = list(range(n))
    Rng(seed, 0x59117).shuffle(order)
    n_test = min(math.floor(n * test + 0.5), n)
    n_val = min(math.floor(n * validation + 0.5), n - n_test)
    return (sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]),
            sorted(order[:n_test]))


def main():
    args = [a for a in sys.argv[1:]]
    seed = 1
    if "--seed" in args:
        at = args.index("--seed")
        seed = int(args[at + 1])
        del args[at:at + 2]
    path = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "data",
                                             "auto_mpg.json")
    with open(path) as f:
        records = pd.DataFrame(json.load(f))
    labelled = records[records["Miles_per_Gallon"].notna()].reset_index(drop=True)
    train_rows, val_rows, test_rows = kiln_split(len(labelled), 0.16, 0.2, 0)
    print(f"split: {len(train_rows)} training, {len(val_rows)} validation, "
          f"{len(test_rows)} test records; first test rows {test_rows[:8]}")

    # The tutorial's cleaning.
    dataset = labelled[["Miles_per_Gallon", "Cylinders", "Displacement", "Horsepower",
                        "Weight_in_lbs", "Acceleration", "Year", "Origin"]].copy()
    dataset["Year"] = pd.to_datetime(dataset["Year"]).dt.year
    dataset = pd.get_dummies(dataset, columns=["Origin"], prefix="", prefix_sep="",
                             dtype=float)
    parts = {}
    for name, rows in (("train", train_rows), ("validation", val_rows), ("test", test_rows)):
        part = dataset.iloc[rows].dropna()
        parts[name] = (part.drop(columns="Miles_per_Gallon").to_numpy(np.float32),
                       part["Miles_per_Gallon"].to_numpy(np.float32))
        print(f"{name}: {len(part)} of {len(rows)} records after dropna")
    x_train, y_train = parts["train"]

    tf.keras.utils.set_random_seed(seed)
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(x_train)
    model = tf.keras.Sequential([
        normalizer,
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(loss="mean_absolute_error", optimizer=tf.keras.optimizers.Adam(0.001))
    start = time.perf_counter()
    model.fit(x_train, y_train, validation_data=parts["validation"], epochs=100, verbose=0)
    seconds = time.perf_counter() - start
    test_mae = model.evaluate(*parts["test"], verbose=0)
    result = {"test_mae": round(float(test_mae), 3), "test_rows": len(parts["test"][1]),
              "epochs": 100, "train_seconds": round(seconds, 2)}
    print("result: " + json.dumps(result))


if __name__ == "__main__":
    main()
