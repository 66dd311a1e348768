package dev.featherface.core

import java.nio.ByteBuffer
import kotlin.math.roundToInt

/** Affine quantisation of one tensor: real = scale * (q - zeroPoint). scale 0 means "not quantised". */
data class QuantParams(val scale: Float, val zeroPoint: Int) {
    val isQuantized: Boolean get() = scale != 0f

    fun quantize(real: Float, min: Int, max: Int): Int = ((real / scale).roundToInt() + zeroPoint).coerceIn(min, max)
    fun dequantize(q: Int): Float = scale * (q - zeroPoint)
}

/** Element type of a model input or output, with its quantisation where it has one. */
sealed class TensorType {
    abstract val bytesPerElement: Int

    object Float32 : TensorType() { override val bytesPerElement = 4 }
    data class Int8(val quant: QuantParams) : TensorType() { override val bytesPerElement = 1 }
    data class UInt8(val quant: QuantParams) : TensorType() { override val bytesPerElement = 1 }
}

/**
 * Writes an image, given as ARGB pixels ([android.graphics.Bitmap.getPixels] layout, row-major, already
 * letterboxed to the input size), into [out] as the model input: NHWC, BGR, `pixel - mean`, as
 * float32 or quantised with the input tensor's scale / zero point. [out] must have native byte order.
 */
fun writeInput(argb: IntArray, meanBgr: FloatArray, type: TensorType, out: ByteBuffer) {
    require(out.remaining() >= argb.size * 3 * type.bytesPerElement) {
        "input buffer holds ${out.remaining()} bytes, ${argb.size * 3 * type.bytesPerElement} needed"
    }
    val mb = meanBgr[0]; val mg = meanBgr[1]; val mr = meanBgr[2]
    when (type) {
        TensorType.Float32 -> for (px in argb) {
            out.putFloat((px and 0xFF) - mb)
            out.putFloat(((px shr 8) and 0xFF) - mg)
            out.putFloat(((px shr 16) and 0xFF) - mr)
        }
        is TensorType.Int8 -> {
            val q = type.quant
            // 256 levels per channel: a lookup table keeps the per-pixel work to three loads.
            val lut = Array(3) { c -> ByteArray(256) { v -> q.quantize(v - meanBgr[c], -128, 127).toByte() } }
            for (px in argb) {
                out.put(lut[0][px and 0xFF])
                out.put(lut[1][(px shr 8) and 0xFF])
                out.put(lut[2][(px shr 16) and 0xFF])
            }
        }
        is TensorType.UInt8 -> {
            val q = type.quant
            val lut = Array(3) { c -> ByteArray(256) { v -> q.quantize(v - meanBgr[c], 0, 255).toByte() } }
            for (px in argb) {
                out.put(lut[0][px and 0xFF])
                out.put(lut[1][(px shr 8) and 0xFF])
                out.put(lut[2][(px shr 16) and 0xFF])
            }
        }
    }
}

/** Reads [count] output values from [buf] (native order, positioned at 0) as real numbers into [dst]. */
fun readOutput(buf: ByteBuffer, type: TensorType, count: Int, dst: FloatArray) {
    require(dst.size >= count) { "destination holds ${dst.size} values, $count needed" }
    buf.rewind()
    when (type) {
        TensorType.Float32 -> buf.asFloatBuffer().get(dst, 0, count)
        is TensorType.Int8 -> for (k in 0 until count) dst[k] = type.quant.dequantize(buf.get().toInt())
        is TensorType.UInt8 -> for (k in 0 until count) dst[k] = type.quant.dequantize(buf.get().toInt() and 0xFF)
    }
}
