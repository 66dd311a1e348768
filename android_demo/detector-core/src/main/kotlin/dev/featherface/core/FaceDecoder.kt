package dev.featherface.core

import kotlin.math.exp

/**
 * Raw model outputs of one image -> faces, the port of `featherface_mobile.processing.postprocess`
 * (decoding semantics in docs/formats.md):
 * score = conf[:, 1]; keep score > threshold; stable sort by score; top_k; decode boxes and
 * landmarks against the priors; scale to input pixels; greedy NMS; keep_top_k; undo the letterbox.
 *
 * Priors are computed once per decoder. Not thread-safe only in the sense that callers share nothing:
 * [decode] allocates its own buffers, so one decoder may serve several threads.
 */
class FaceDecoder(
    val inputWidth: Int,
    val inputHeight: Int,
    val priors: PriorConfig,
    val thresholds: Thresholds,
) {
    constructor(config: DetectorConfig) : this(config.input.width, config.input.height, config.priors, config.thresholds)

    private val priorBoxes: FloatArray = priorBoxes(inputWidth, inputHeight, priors)

    /** Number of priors; each output must hold this many rows. */
    val numPriors: Int = priorBoxes.size / 4

    /**
     * [loc] (N*4), [conf] (N*2, softmax applied; column 1 is the face score), [landms] (N*10), all
     * row-major. Faces come back in input pixels, or in original image pixels when [letterbox] is given.
     */
    fun decode(loc: FloatArray, conf: FloatArray, landms: FloatArray, letterbox: Letterbox? = null): List<Face> {
        val n = numPriors
        require(loc.size == n * 4) { "loc holds ${loc.size} values, expected $n x 4 for a ${inputWidth}x$inputHeight input" }
        require(conf.size == n * 2) { "conf holds ${conf.size} values, expected $n x 2 for a ${inputWidth}x$inputHeight input" }
        require(landms.size == n * 10) { "landms holds ${landms.size} values, expected $n x 10 for a ${inputWidth}x$inputHeight input" }

        // 2-3. Candidates above the threshold, by descending score; ties keep the lower prior index.
        var kept = 0
        val candidates = IntArray(n)
        for (p in 0 until n) if (conf[2 * p + 1] > thresholds.score) candidates[kept++] = p
        val order = candidates.copyOf(kept).toTypedArray()
        order.sortWith { a, b -> conf[2 * b + 1].compareTo(conf[2 * a + 1]) } // TimSort: stable
        val count = minOf(order.size, thresholds.topK)

        // 4. Decode the candidates into input pixels.
        val v0 = priors.variance[0].toFloat()
        val v1 = priors.variance[1].toFloat()
        val w = inputWidth.toFloat()
        val h = inputHeight.toFloat()
        val boxes = FloatArray(count * 4)
        val points = FloatArray(count * 10)
        for (k in 0 until count) {
            val p = order[k]
            val cx = priorBoxes[4 * p]; val cy = priorBoxes[4 * p + 1]
            val pw = priorBoxes[4 * p + 2]; val ph = priorBoxes[4 * p + 3]
            val bcx = cx + loc[4 * p] * v0 * pw
            val bcy = cy + loc[4 * p + 1] * v0 * ph
            val bw = pw * exp(loc[4 * p + 2] * v1)
            val bh = ph * exp(loc[4 * p + 3] * v1)
            boxes[4 * k] = (bcx - bw / 2) * w
            boxes[4 * k + 1] = (bcy - bh / 2) * h
            boxes[4 * k + 2] = (bcx + bw / 2) * w
            boxes[4 * k + 3] = (bcy + bh / 2) * h
            for (m in 0 until 5) {
                points[10 * k + 2 * m] = (cx + landms[10 * p + 2 * m] * v0 * pw) * w
                points[10 * k + 2 * m + 1] = (cy + landms[10 * p + 2 * m + 1] * v0 * ph) * h
            }
        }

        // 5. Greedy NMS in score order, at most keep_top_k faces.
        val keep = nmsSorted(boxes, count, thresholds.nmsIou, thresholds.keepTopK)

        // 6. Back to image pixels.
        return keep.map { k ->
            val face = Face(
                boxes[4 * k], boxes[4 * k + 1], boxes[4 * k + 2], boxes[4 * k + 3],
                conf[2 * order[k] + 1],
                points.copyOfRange(10 * k, 10 * k + 10),
            )
            if (letterbox == null) face else face.mapPoints(letterbox::toImageX, letterbox::toImageY)
        }
    }
}
