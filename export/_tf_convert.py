"""TFLite conversion worker, run in a subprocess (TensorFlow's memory and cwd stay out of the caller).

ONNX -> onnx2tf (NHWC SavedModel + float32/float16 .tflite) -> for INT8, TensorFlow's own
TFLiteConverter on that SavedModel with a representative dataset of real, runtime-preprocessed
images (full-integer ops, float32 input/output tensors).

Usage: python -m featherface_mobile.export._tf_convert MODEL.onnx WORKDIR PRECISION [CALIB.npy]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def convert(onnx_path: Path, work: Path, precision: str, calib: Path | None) -> Path:
    import numpy as np

    os.chdir(work)
    # onnx2tf checks its output on this sample file and would otherwise download it.
    sample = np.load(calib)[:20] if calib else np.zeros((1, 128, 128, 3), np.float32)
    sample_128 = np.stack([_resize(x, 128) for x in sample]).astype(np.float32)
    lo, hi = sample_128.min(), sample_128.max()
    np.save("calibration_image_sample_data_20x128x128x3_float32.npy", (sample_128 - lo) / max(hi - lo, 1e-6))
    import onnx2tf

    onnx2tf.convert(
        input_onnx_file_path=str(onnx_path),
        output_folder_path="saved_model",
        copy_onnx_input_output_names_to_tflite=True,
        output_signaturedefs=True,
        non_verbose=True,
    )
    stem = onnx_path.stem
    if precision in ("fp32", "fp16"):
        src = work / "saved_model" / f"{stem}_{'float32' if precision == 'fp32' else 'float16'}.tflite"
        return src
    import tensorflow as tf

    data = np.load(calib)

    def representative():
        for x in data:
            yield [x[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_saved_model(str(work / "saved_model"))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.float32
    conv.inference_output_type = tf.float32
    out = work / f"{stem}_int8.tflite"
    if os.environ.get("FEATHERFACE_INT8_RANGES", "mse") == "minmax":
        out.write_bytes(conv.convert())
        return out
    # Calibrate, clip activation ranges (featherface_mobile.quant.ranges), then quantize fully.
    from tensorflow.lite.python.convert import mlir_quantize

    from featherface_mobile.quant.ranges import mse_ranges

    conv._experimental_calibrate_only = True
    calibrated, summary = mse_ranges(conv.convert(), data[:16])
    print(f"INT8_RANGES={summary}")
    if os.environ.get("FEATHERFACE_INT8_LEARNED"):  # QAT's learned ranges replace calibration where matched
        from featherface_mobile.quant.learned import LearnedRanges, apply_to_calibrated_tflite

        calibrated, learned = apply_to_calibrated_tflite(calibrated, LearnedRanges.load(os.environ["FEATHERFACE_INT8_LEARNED"]))
        print(f"INT8_LEARNED={json.dumps(learned)}")
    denylisted = None
    if os.environ.get("FEATHERFACE_INT8_FLOAT"):  # op groups kept float (featherface_mobile.quant.float_ops)
        from featherface_mobile.quant.float_ops import tflite_float_nodes

        denylisted = tflite_float_nodes(calibrated, os.environ["FEATHERFACE_INT8_FLOAT"].split(","))
        print(f"INT8_FLOAT={json.dumps(denylisted)}")
    out.write_bytes(mlir_quantize(calibrated, input_data_type=tf.float32, output_data_type=tf.float32,
                                  denylisted_nodes=denylisted))
    return out


def _resize(x, size):
    from PIL import Image
    import numpy as np

    # x is NHWC float (pixel - mean): resize each channel as float32 image.
    chans = [np.asarray(Image.fromarray(x[..., c].astype(np.float32), mode="F").resize((size, size))) for c in range(3)]
    return np.stack(chans, axis=-1)


if __name__ == "__main__":
    onnx_file, workdir, prec = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3]
    calib_file = Path(sys.argv[4]).resolve() if len(sys.argv) > 4 else None
    result = convert(onnx_file, workdir, prec, calib_file)
    print(f"TFLITE_OUTPUT={result}")
