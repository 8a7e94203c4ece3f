#!/usr/bin/env python3
"""Reference side of the TSV reader oracle: pandas.read_csv(path, sep='\\t') as VLMEvalKit's load() calls it.

  tsv_oracle.py TSV OUT_JSON
Writes {"columns": [...], "dtypes": {column: "int"|"float"|"bool"|"text"}, "rows": [[null or str(value), ...]]}.
"""
import json
import sys

import pandas as pd


def kind(dtype):
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "text"


def main():
    df = pd.read_csv(sys.argv[1], sep="\t")
    # Cell by cell through its column (a row Series would upcast every value to the row's common dtype).
    rows = []
    for i in range(len(df)):
        row = []
        for c in df.columns:
            v = df[c].iloc[i]
            row.append(None if pd.isna(v) else str(v))
        rows.append(row)
    out = {"columns": [str(c) for c in df.columns], "dtypes": {str(c): kind(df[c].dtype) for c in df.columns},
           "rows": rows}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    print("ok")


if __name__ == "__main__":
    main()
