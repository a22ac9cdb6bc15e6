"""Runs kiln's ONNX exports in onnxruntime and compares them with kiln's outputs.

Usage: run_onnxruntime.py MANIFEST.json

The manifest lists cases: {"name", "model", "input", "expected", "input_shape"
(per sample, kiln's NHWC order), "batch", "layout" ("NHWC" or "NCHW")}. The inputs and
kiln's outputs are little-endian float32 files in kiln's order. Each model must pass
onnx's full checker (with shape inference), declare a symbolic batch, and give kiln's
outputs. Prints one JSON object: {name: {"max_abs_diff", "output_shape", "min",
"max" (of kiln's outputs), "opset", "nodes", "ops"}}.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    cases = json.load(open(sys.argv[1]))
    results = {}
    for case in cases:
        model = onnx.load(case["model"])
        onnx.checker.check_model(model, full_check=True)
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param == "batch", batch_dim
        shape = [case["batch"]] + case["input_shape"]
        x = np.fromfile(case["input"], dtype="<f4").reshape(shape)
        nchw = case["layout"] == "NCHW"
        if nchw and x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        (y,) = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x)})
        if nchw and y.ndim == 4:
            y = y.transpose(0, 2, 3, 1)
        expected = np.fromfile(case["expected"], dtype="<f4").reshape(y.shape)
        results[case["name"]] = {
            "max_abs_diff": float(np.max(np.abs(y - expected))),
            "output_shape": list(y.shape),
            "min": float(expected.min()),
            "max": float(expected.max()),
            "opset": model.opset_import[0].version,
            "nodes": len(model.graph.node),
            "ops": sorted({n.op_type for n in model.graph.node}),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
