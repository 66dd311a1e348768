package dev.featherface.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test
import kotlin.math.exp

class DecodingTest {
    private val priors = PriorConfig.DEFAULT

    @Test
    fun priorCountAndLayoutFollowLevelsRowsColumnsSizes() {
        // 320: (40*40 + 20*20 + 10*10) * 2 = 4200; 640: 16800 (the manifest example).
        assertEquals(4200, priorCount(320, 320, priors))
        assertEquals(16800, priorCount(640, 640, priors))
        val p = priorBoxes(320, 320, priors)
        assertEquals(4200 * 4, p.size)
        // First level, row 0, column 0: two sizes at the same centre.
        assertArrayEquals(floatArrayOf(4f / 320, 4f / 320, 16f / 320, 16f / 320), p.copyOfRange(0, 4), 1e-7f)
        assertArrayEquals(floatArrayOf(4f / 320, 4f / 320, 32f / 320, 32f / 320), p.copyOfRange(4, 8), 1e-7f)
        // Then column 1 of row 0.
        assertArrayEquals(floatArrayOf(12f / 320, 4f / 320, 16f / 320, 16f / 320), p.copyOfRange(8, 12), 1e-7f)
        // First prior of the second level starts after 40*40*2 priors.
        assertArrayEquals(floatArrayOf(8f / 320, 8f / 320, 64f / 320, 64f / 320), p.copyOfRange(3200 * 4, 3200 * 4 + 4), 1e-7f)
    }

    @Test
    fun nonSquareInputsUseCeilOfEachSide() {
        // 100 x 60 with step 8: ceil(60/8)=8 rows, ceil(100/8)=13 columns.
        val one = PriorConfig(listOf(intArrayOf(16)), intArrayOf(8), doubleArrayOf(0.1, 0.2), clip = false)
        assertEquals(8 * 13, priorCount(100, 60, one))
        val p = priorBoxes(100, 60, one)
        assertEquals((12 + 0.5f) * 8 / 100, p[4 * 12], 1e-7f) // last column of the first row
        assertEquals((1 + 0.5f) * 8 / 60, p[4 * 13 + 1], 1e-7f) // first prior of the second row
    }

    @Test
    fun clipClampsToTheUnitRange() {
        val big = PriorConfig(listOf(intArrayOf(512)), intArrayOf(32), doubleArrayOf(0.1, 0.2), clip = true)
        val p = priorBoxes(320, 320, big)
        assertEquals(1f, p[2], 0f)
        assertEquals(p.maxOrNull()!!, 1f, 0f)
    }

    /** Outputs for 4200 priors, all background except the given (prior, score, loc, landms) rows. */
    private fun outputs(vararg faces: Triple<Int, Float, FloatArray>): Triple<FloatArray, FloatArray, FloatArray> {
        val n = 4200
        val loc = FloatArray(n * 4)
        val conf = FloatArray(n * 2) { if (it % 2 == 0) 1f else 0f }
        val landms = FloatArray(n * 10)
        for ((p, score, l) in faces) {
            conf[2 * p] = 1 - score; conf[2 * p + 1] = score
            l.copyInto(loc, 4 * p)
        }
        return Triple(loc, conf, landms)
    }

    @Test
    fun decodesOneBoxByTheDocumentedFormulas() {
        val decoder = FaceDecoder(320, 320, priors, Thresholds())
        val p = 3201 // second level, row 0, column 0, size 128: prior (8, 8, 128, 128) px
        val (loc, conf, landms) = outputs(Triple(p, 0.9f, floatArrayOf(1f, -2f, 0.5f, 0f)))
        landms[10 * p] = 3f; landms[10 * p + 1] = -1f
        val face = decoder.decode(loc, conf, landms).single()
        val cx = 8 + 1 * 0.1f * 128
        val cy = 8 - 2 * 0.1f * 128
        val w = 128 * exp(0.5f * 0.2f)
        val h = 128f
        assertEquals(cx - w / 2, face.x1, 1e-3f)
        assertEquals(cy - h / 2, face.y1, 1e-3f)
        assertEquals(cx + w / 2, face.x2, 1e-3f)
        assertEquals(cy + h / 2, face.y2, 1e-3f)
        assertEquals(8 + 3 * 0.1f * 128, face.landmarks[0], 1e-3f)
        assertEquals(8 - 1 * 0.1f * 128, face.landmarks[1], 1e-3f)
        assertEquals(8f, face.landmarks[2], 1e-3f) // zero offset: the prior centre
        assertEquals(0.9f, face.score)
    }

    @Test
    fun scoreThresholdIsStrict() {
        val decoder = FaceDecoder(320, 320, priors, Thresholds(score = 0.5f))
        val (loc, conf, landms) = outputs(Triple(10, 0.5f, FloatArray(4)), Triple(3300, 0.5001f, FloatArray(4)))
        assertEquals(listOf(0.5001f), decoder.decode(loc, conf, landms).map { it.score })
    }

    @Test
    fun nmsKeepsTheBestOfOverlappingBoxesAndOrdersByScore() {
        val decoder = FaceDecoder(320, 320, priors, Thresholds())
        // Priors 3201 and 3203 are neighbours (16 px apart, 128 px boxes): IoU 0.78 -> one survives.
        // Prior 200 (a 16 px box at (164, 20)) overlaps neither.
        val (loc, conf, landms) = outputs(
            Triple(3201, 0.7f, FloatArray(4)),
            Triple(3203, 0.8f, FloatArray(4)),
            Triple(200, 0.95f, FloatArray(4)),
        )
        assertEquals(listOf(0.95f, 0.8f), decoder.decode(loc, conf, landms).map { it.score })
    }

    @Test
    fun equalScoresKeepPriorOrder() {
        val decoder = FaceDecoder(320, 320, priors, Thresholds())
        val (loc, conf, landms) = outputs(Triple(3900, 0.9f, FloatArray(4)), Triple(100, 0.9f, FloatArray(4)), Triple(2000, 0.9f, FloatArray(4)))
        // Far apart, all kept (centres y = 12, 204, 280): ascending prior index means ascending y here.
        val ys = decoder.decode(loc, conf, landms).map { (it.y1 + it.y2) / 2 }
        assertEquals(ys.sorted(), ys)
    }

    @Test
    fun topKAndKeepTopKLimit() {
        val far = (0 until 40).map { Triple(2 * it * 41, 0.9f - it * 0.001f, FloatArray(4)) }.toTypedArray()
        val (loc, conf, landms) = outputs(*far)
        assertEquals(5, FaceDecoder(320, 320, priors, Thresholds(keepTopK = 5)).decode(loc, conf, landms).size)
        assertEquals(3, FaceDecoder(320, 320, priors, Thresholds(topK = 3)).decode(loc, conf, landms).size)
    }

    @Test
    fun wrongOutputSizeNamesTheExpectedShape() {
        val decoder = FaceDecoder(320, 320, priors, Thresholds())
        val e = assertThrows(IllegalArgumentException::class.java) {
            decoder.decode(FloatArray(16800 * 4), FloatArray(4200 * 2), FloatArray(4200 * 10))
        }
        assertEquals("loc holds 67200 values, expected 4200 x 4 for a 320x320 input", e.message)
    }

    @Test
    fun iouHasNoPlusOne() {
        val boxes = floatArrayOf(0f, 0f, 10f, 10f, 5f, 0f, 15f, 10f, 20f, 20f, 20f, 30f)
        assertEquals(50f / 150f, iou(boxes, 0, 1), 1e-6f)
        assertEquals(0f, iou(boxes, 0, 2), 0f) // degenerate box: zero area, no division by zero
    }

    @Test
    fun nmsSuppressesOnlyAboveTheThreshold() {
        // IoU of boxes 0 and 1 is exactly 1/3: kept at threshold 1/3 (suppression needs IoU > threshold).
        val boxes = floatArrayOf(0f, 0f, 10f, 10f, 5f, 0f, 15f, 10f)
        assertArrayEquals(intArrayOf(0, 1), nmsSorted(boxes, 2, 1f / 3f + 1e-6f))
        assertArrayEquals(intArrayOf(0), nmsSorted(boxes, 2, 0.3f))
        assertArrayEquals(intArrayOf(0), nmsSorted(boxes, 2, 0.9f, limit = 1))
    }
}
