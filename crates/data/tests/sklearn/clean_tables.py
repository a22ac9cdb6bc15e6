#!/usr/bin/env python3
"""The expected values of `crates/data/tests/sklearn.rs`: the cleaning of kiln's
`TablePipeline`, done by scikit-learn, NumPy and pandas on the same real tables.

    python3 -m venv /tmp/tablesenv && /tmp/tablesenv/bin/pip install scikit-learn pandas
    /tmp/tablesenv/bin/python crates/data/tests/sklearn/clean_tables.py examples/data [OUT]

The tables are read from the folder given (the copies shipped in `examples/data`);
the files are written to OUT, by default this script's folder. The test
`scikit_learn_recomputed_now` of `sklearn.rs` runs it into a scratch folder when a
Python with scikit-learn and pandas is at hand (`KILN_PYTHON`, else `python3`), and
compares kiln with what it writes then.

Every case fits on the training rows (the rows whose index in the table is not a
multiple of 5) and transforms every row, in the file's order. Each case writes
`<case>.csv.gz`, the feature matrix with kiln's feature names as header, and
`<case>_fill.csv`, what each column's missing cells are filled with (the imputer's
`statistics_`; the case that drops rows, also how many each reason dropped); the
power cases write the fitted Yeo-Johnson and Box-Cox exponents
and the clipping bounds instead.
Numbers are written with 17 significant digits, so they read back exactly.

Written with scikit-learn 1.9.1, NumPy 2.4.6, pandas 3.1.1, SciPy 1.17.1.
"""

import gzip
import io
import json
import os
import sys

import numpy as np
import pandas as pd
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
    StandardScaler,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = HERE

PENGUIN_NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_CATEGORIES = ["island", "sex"]


def train_rows(n):
    return np.array([i % 5 != 0 for i in range(n)])


def write(case, names, matrix, fills):
    assert matrix.shape[1] == len(names), (case, matrix.shape, names)
    # No time stamp in the gzip header: the same values give the same bytes.
    raw = gzip.GzipFile(os.path.join(OUT, f"{case}.csv.gz"), "wb", compresslevel=9, mtime=0)
    with io.TextIOWrapper(raw) as f:
        f.write(",".join(names) + "\n")
        for row in matrix:
            f.write(",".join(f"{v:.17g}" for v in row) + "\n")
    with open(os.path.join(OUT, f"{case}_fill.csv"), "w") as f:
        f.write("column,fill\n")
        for column, fill in fills:
            text = f"{fill:.17g}" if isinstance(fill, (float, np.floating, int)) else str(fill)
            f.write(f"{column},{text}\n")
    print(f"{case}: {matrix.shape[0]} rows x {matrix.shape[1]} features")


def numbers(df, columns, train, strategy, fill_value, scaler, indicators):
    """Imputed (with indicators after each column) and scaled number columns."""
    x = df[columns].to_numpy(dtype=float)
    imputer = SimpleImputer(strategy=strategy, fill_value=fill_value).fit(x[train])
    filled = imputer.transform(x)
    scaled = scaler.fit(filled[train]).transform(filled)
    flagged = set()
    if indicators:
        flagged = set(MissingIndicator(features="missing-only").fit(x[train]).features_)
    blocks, names = [], []
    for j, c in enumerate(columns):
        blocks.append(scaled[:, [j]])
        names.append(c)
        if j in flagged:
            blocks.append(np.isnan(x[:, [j]]).astype(float))
            names.append(f"{c}.missing")
    return names, blocks, list(zip(columns, imputer.statistics_))


def category(df, column, train, strategy, fill_value, encoding, indicator):
    """One imputed and encoded category column (and its indicator)."""
    x = df[[column]].astype(object).where(df[[column]].notna(), np.nan).to_numpy()
    imputer = SimpleImputer(strategy=strategy, fill_value=fill_value).fit(x[train])
    filled = imputer.transform(x)
    if encoding == "one_hot":
        encoder = OneHotEncoder(sparse_output=False, handle_unknown="error").fit(filled[train])
        names = [f"{column}={c}" for c in encoder.categories_[0]]
    else:
        encoder = OrdinalEncoder().fit(filled[train])
        names = [column]
    blocks = [encoder.transform(filled)]
    missing = pd.isna(df[column]).to_numpy()
    if indicator and missing[train].any():
        blocks.append(missing[:, None].astype(float))
        names.append(f"{column}.missing")
    return names, blocks, [(column, imputer.statistics_[0])]


def penguins(folder, case, number_strategy, number_fill, category_strategy, category_fill,
             encoding, scaler, indicators):
    df = pd.read_csv(os.path.join(folder, "penguins.csv"))
    train = train_rows(len(df))
    # kiln's order: the file's columns (species is the target, year left out).
    names, blocks, fills = [], [], []
    for column in ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                   "body_mass_g", "sex"]:
        if column in PENGUIN_CATEGORIES:
            n, b, f = category(df, column, train, category_strategy, category_fill, encoding,
                               indicators)
        else:
            n, b, f = numbers(df, [column], train, number_strategy, number_fill, scaler(),
                              indicators)
        names += n
        blocks += b
        fills += f
    write(case, names, np.hstack(blocks), fills)


def penguins_dropped(folder):
    """Columns and rows dropped as pandas drops them, then mean imputation, one-hot
    island and standardised numbers fitted on the rows kept. The training rows are
    those whose index is not a multiple of 5, and again those of them whose index is
    1 more than a multiple of 7 (duplicates to drop)."""
    df = pd.read_csv(os.path.join(folder, "penguins.csv"))
    n = len(df)
    train = [i for i in range(n) if i % 5 != 0]
    t = df.iloc[train + [i for i in train if i % 7 == 1]].reset_index(drop=True)
    inputs = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
              "body_mass_g", "sex"]
    # drop_columns_missing_over(0.02): sex misses 3 % of its training cells.
    kept = [c for c in inputs if t[c].isna().mean() <= 0.02]
    assert "sex" not in kept, kept
    # drop_rows_missing_over(0.5), then drop_duplicates() over the columns used.
    sparse = t[kept].isna().sum(axis=1) > 0.5 * len(kept)
    rows = t[~sparse]
    unique = rows.drop_duplicates(subset=kept + ["species"])
    numbers = [c for c in kept if c != "island"]
    imputer = SimpleImputer(strategy="mean").fit(unique[numbers].to_numpy(dtype=float))
    scaler = StandardScaler().fit(imputer.transform(unique[numbers].to_numpy(dtype=float)))
    x = scaler.transform(imputer.transform(df[numbers].to_numpy(dtype=float)))
    encoder = OneHotEncoder(sparse_output=False).fit(unique[["island"]])
    names = [f"island={c}" for c in encoder.categories_[0]] + numbers
    counts = [("rows.read", len(t)), ("rows.too_sparse", int(sparse.sum())),
              ("rows.duplicates", len(rows) - len(unique)), ("rows.kept", len(unique))]
    write("penguins_dropped", names, np.hstack([encoder.transform(df[["island"]]), x]),
          list(zip(numbers, imputer.statistics_)) + counts)


def auto_mpg(folder):
    with open(os.path.join(folder, "auto_mpg.json")) as f:
        df = pd.DataFrame(json.load(f))
    df = df[df["Miles_per_Gallon"].notna()].reset_index(drop=True)
    train = train_rows(len(df))
    year = pd.to_datetime(df["Year"])
    df["Year.year"] = year.dt.year.astype(float)
    df["Year.day_of_year"] = year.dt.day_of_year.astype(float)

    # Median imputation, one-hot Origin, standardised numbers and date parts.
    columns = ["Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration",
               "Year.year", "Year.day_of_year"]
    names, blocks, fills = numbers(df, columns, train, "median", None, StandardScaler(), False)
    n, b, f = category(df, "Origin", train, "most_frequent", None, "one_hot", False)
    write("auto_mpg_median", names + n, np.hstack(blocks + b), fills + f)

    # Every feature standardised, the one-hot columns too, as Keras's Normalization
    # adapted to the whole input.
    names, blocks, fills = numbers(df, columns, train, "median", None, FunctionTransformer(),
                                   False)
    x = np.hstack(blocks + b)
    write("auto_mpg_every_feature", names + n, StandardScaler().fit(x[train]).transform(x),
          fills + f)

    # Clipped to the 5 % and 95 % quantiles, log1p of Displacement, Yeo-Johnson of
    # Horsepower, then standardised.
    numeric = columns[:5]
    x = df[numeric].to_numpy(dtype=float)
    filled = SimpleImputer(strategy="median").fit(x[train]).transform(x)
    low = np.quantile(filled[train], 0.05, axis=0)
    high = np.quantile(filled[train], 0.95, axis=0)
    clipped = np.clip(filled, low, high)
    clipped[:, 1] = np.log1p(clipped[:, 1])
    power = PowerTransformer(standardize=False).fit(clipped[train][:, [2]])
    clipped[:, [2]] = power.transform(clipped[:, [2]])
    scaled = StandardScaler().fit(clipped[train]).transform(clipped)
    dates = StandardScaler().fit(df[columns[5:]].to_numpy()[train]).transform(
        df[columns[5:]].to_numpy())
    write("auto_mpg_outliers", numeric + columns[5:] + n, np.hstack([scaled, dates] + b),
          [("Horsepower.lambda", power.lambdas_[0])]
          + [(f"{c}.low", v) for c, v in zip(numeric, low)]
          + [(f"{c}.high", v) for c, v in zip(numeric, high)])

    # Box-Cox of the two positive, skewed columns Weight_in_lbs and Acceleration
    # after median imputation, then every number standardised.
    filled = SimpleImputer(strategy="median").fit(x[train]).transform(x)
    box_cox = PowerTransformer(method="box-cox", standardize=False).fit(filled[train][:, 3:5])
    filled[:, 3:5] = box_cox.transform(filled[:, 3:5])
    scaled = StandardScaler().fit(filled[train]).transform(filled)
    write("auto_mpg_box_cox", numeric + columns[5:] + n, np.hstack([scaled, dates] + b),
          [(f"{c}.lambda", v) for c, v in zip(numeric[3:5], box_cox.lambdas_)])


def main():
    global OUT
    folder = sys.argv[1] if len(sys.argv) > 1 else "examples/data"
    if len(sys.argv) > 2:
        OUT = sys.argv[2]
        os.makedirs(OUT, exist_ok=True)
    penguins(folder, "penguins_mean_one_hot", "mean", None, "most_frequent", None, "one_hot",
             StandardScaler, True)
    penguins(folder, "penguins_most_frequent_ordinal", "most_frequent", None, "most_frequent",
             None, "ordinal", MinMaxScaler, False)
    penguins(folder, "penguins_constant", "constant", 0.0, "constant", "missing", "one_hot",
             StandardScaler, False)
    penguins_dropped(folder)
    auto_mpg(folder)


if __name__ == "__main__":
    main()
