package dev.featherface.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** Pre-processing, quantisation, geometry and timing helpers the app builds on. */
class PipelineTest {
    private val mean = floatArrayOf(104f, 117f, 123f)

    private fun argb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    @Test
    fun float32InputIsBgrMinusMean() {
        val buf = ByteBuffer.allocate(2 * 3 * 4).order(ByteOrder.nativeOrder())
        writeInput(intArrayOf(argb(200, 100, 50), argb(123, 117, 104)), mean, TensorType.Float32, buf)
        buf.rewind()
        val got = FloatArray(6) { buf.float }
        assertArrayEquals(floatArrayOf(50f - 104, 100f - 117, 200f - 123, 0f, 0f, 0f), got, 0f)
    }

    @Test
    fun int8InputIsQuantisedWithTheTensorParameters() {
        val q = QuantParams(scale = 0.5f, zeroPoint = 3)
        val buf = ByteBuffer.allocate(3 * 2).order(ByteOrder.nativeOrder())
        writeInput(intArrayOf(argb(255, 117, 0), argb(123, 118, 105)), mean, TensorType.Int8(q), buf)
        // B: (0-104)/0.5+3 = -205 -> clamped -128; G: 0+3 = 3; R: (255-123)/0.5+3 = 267 -> 127.
        assertArrayEquals(byteArrayOf(-128, 3, 127, 5, 5, 3), buf.array())
    }

    @Test
    fun outputsAreDequantised() {
        val q = QuantParams(scale = 0.25f, zeroPoint = -10)
        val buf = ByteBuffer.wrap(byteArrayOf(-10, 0, 127, -128))
        val dst = FloatArray(4)
        readOutput(buf, TensorType.Int8(q), 4, dst)
        assertArrayEquals(floatArrayOf(0f, 2.5f, 34.25f, -29.5f), dst, 0f)
        val u = FloatArray(2)
        readOutput(ByteBuffer.wrap(byteArrayOf(0, -1)), TensorType.UInt8(QuantParams(1f / 255, 0)), 2, u)
        assertArrayEquals(floatArrayOf(0f, 1f), u, 1e-7f)
    }

    @Test
    fun letterboxFollowsPythonRounding() {
        val lb = Letterbox.fit(640, 480, 320)
        assertEquals(Letterbox(0.5, 0.5, 0, 40, 640, 480), lb)
        assertEquals(Letterbox.identity(320, 320), Letterbox.fit(320, 320, 320))
        // 1000 x 333 -> 320 x 106.56 -> round 107; pad (320-107)//2 = 106.
        assertEquals(106, Letterbox.fit(1000, 333, 320).padY)
        // Half-way sizes round to even like Python's round(): 8 x 5 into 4 -> 4 x 2.5 -> 4 x 2, pad_y 1.
        assertEquals(2, Letterbox.fit(8, 5, 4).resizedHeight)
        assertEquals(1, Letterbox.fit(8, 5, 4).padY)
        assertEquals(100f, lb.toImageY(lb.toInputY(100f)), 1e-4f)
    }

    @Test
    fun sensorToUprightRotatesClockwise() {
        // A 640 x 480 buffer that must be turned 90 degrees clockwise: upright it is 480 x 640.
        assertEquals(480 to 640, Affine.uprightSize(640, 480, 90))
        val r = Affine.upright(640, 480, 90)
        // Top-left of the buffer goes to the top-right of the upright image, top-right to bottom-right.
        assertEquals(480f, r.x(0f, 0f)); assertEquals(0f, r.y(0f, 0f))
        assertEquals(480f, r.x(640f, 0f)); assertEquals(640f, r.y(640f, 0f))
        val r270 = Affine.upright(640, 480, 270)
        assertEquals(0f, r270.x(0f, 0f)); assertEquals(640f, r270.y(0f, 0f))
        val r180 = Affine.upright(640, 480, 180)
        assertEquals(640f, r180.x(0f, 0f)); assertEquals(480f, r180.y(0f, 0f))
    }

    @Test
    fun sensorToInputLandsInsideTheLetterbox() {
        val (w, h) = Affine.uprightSize(640, 480, 90)
        val lb = Letterbox.fit(w, h, 320)
        val m = Affine.sensorToInput(640, 480, 90, lb)
        // Every buffer corner ends on the border of the placed image.
        for ((x, y) in listOf(0f to 0f, 640f to 0f, 0f to 480f, 640f to 480f)) {
            val ix = m.x(x, y); val iy = m.y(x, y)
            assertTrue(ix == lb.padX.toFloat() || ix == lb.padX + lb.resizedWidth.toFloat())
            assertTrue(iy == lb.padY.toFloat() || iy == lb.padY + lb.resizedHeight.toFloat())
        }
        assertArrayEquals(floatArrayOf(m.m00, m.m01, m.m02, m.m10, m.m11, m.m12, 0f, 0f, 1f), m.toMatrixValues(), 0f)
    }

    @Test
    fun viewTransformMirrorsTheFrontCamera() {
        val face = Face(10f, 20f, 30f, 60f, 0.9f, floatArrayOf(12f, 30f, 28f, 30f, 20f, 40f, 14f, 50f, 26f, 50f))
        // 480 x 640 image filling a 960 x 1280 view: scale 2, no offset.
        val back = ViewTransform.fillCenter(480, 640, 960, 1280, mirror = false).apply(face)
        assertEquals(Face(20f, 40f, 60f, 120f, 0.9f, floatArrayOf(24f, 60f, 56f, 60f, 40f, 80f, 28f, 100f, 52f, 100f)), back)
        val front = ViewTransform.fillCenter(480, 640, 960, 1280, mirror = true).apply(face)
        assertEquals(960f - 60f, front.x1); assertEquals(960f - 20f, front.x2)
        assertEquals(960f - 24f, front.landmarks[0]) // the left eye appears on the right, as in a mirror
        // Filling a wider view crops top and bottom: offset is negative in y.
        val wide = ViewTransform.fillCenter(480, 640, 1080, 1080, mirror = false)
        assertEquals(2.25f, wide.scale); assertEquals(0f, wide.offsetX); assertEquals((1080 - 640 * 2.25f) / 2, wide.offsetY)
    }

    @Test
    fun percentilesMatchNumpy() {
        val v = doubleArrayOf(1.0, 2.0, 3.0, 4.0, 10.0)
        // numpy.percentile([1,2,3,4,10], 90) == 7.6; median 3.
        assertEquals(7.6, percentile(v, 90.0), 1e-12)
        val s = LatencySummary.of(doubleArrayOf(10.0, 4.0, 2.0, 1.0, 3.0))
        assertEquals(3.0, s.medianMs, 0.0)
        assertEquals(7.6, s.p90Ms, 1e-12)
        assertEquals(1000.0 / 3.0, s.fps, 1e-9)
    }

    @Test
    fun slidingWindowKeepsTheLatestValues() {
        val w = SlidingWindow(3)
        listOf(100.0, 1.0, 2.0, 3.0).forEach(w::add)
        assertEquals(LatencySummary.of(doubleArrayOf(1.0, 2.0, 3.0)), w.summary())
        val stats = PipelineStats(windowSize = 4)
        for (k in 0 until 10) stats.frame(k * 50_000_000L, 1.0, 2.0, 3.0) // one frame every 50 ms
        assertEquals(20.0, stats.fps(), 1e-9)
        assertEquals(2.0, stats.inference.summary().medianMs, 0.0)
    }

    @Test
    fun benchmarkReportIsValidJson() {
        val s = LatencySummary.of(doubleArrayOf(5.0, 6.0, 7.0))
        val r = BenchmarkReport("Pixel \"8\"", "15", "featherface-v1", "m_int8.tflite", "gpu", "xnnpack", 4, 10, 50, s, s, 1, note = "GPU delegate failed:\nfell back")
        val o = Json.parseObject(r.toJson(), "report")
        assertEquals("Pixel \"8\"", o.string("device"))
        assertEquals(6.0, o.double("median_ms"), 0.0)
        assertEquals(166.667, o.double("fps"), 0.0)
        assertEquals(4, o.int("threads"))
        assertEquals("xnnpack", o.string("delegate_used"))
        assertEquals(BenchmarkReport.FORMAT, o.string("format"))
    }
}
