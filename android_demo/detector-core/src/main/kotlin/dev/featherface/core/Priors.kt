package dev.featherface.core

import kotlin.math.ceil

/**
 * Prior (anchor) boxes as (cx, cy, w, h), normalised by the input size: level by level, row-major,
 * sizes innermost, exactly as `featherface_mobile.processing.prior_boxes`.
 */
fun priorBoxes(width: Int, height: Int, priors: PriorConfig): FloatArray {
    val out = FloatArray(priorCount(width, height, priors) * 4)
    var n = 0
    for ((level, step) in priors.steps.withIndex()) {
        val fh = ceil(height.toDouble() / step).toInt()
        val fw = ceil(width.toDouble() / step).toInt()
        for (i in 0 until fh) for (j in 0 until fw) for (s in priors.minSizes[level]) {
            out[n++] = ((j + 0.5) * step / width).toFloat()
            out[n++] = ((i + 0.5) * step / height).toFloat()
            out[n++] = (s.toDouble() / width).toFloat()
            out[n++] = (s.toDouble() / height).toFloat()
        }
    }
    if (priors.clip) for (k in out.indices) out[k] = out[k].coerceIn(0f, 1f)
    return out
}

/** Number of priors for an input of [width] x [height]: what the model's outputs must hold. */
fun priorCount(width: Int, height: Int, priors: PriorConfig): Int =
    priors.steps.withIndex().sumOf { (level, step) ->
        ceil(height.toDouble() / step).toInt() * ceil(width.toDouble() / step).toInt() * priors.minSizes[level].size
    }
