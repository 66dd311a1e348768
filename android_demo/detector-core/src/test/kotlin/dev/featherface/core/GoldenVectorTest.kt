package dev.featherface.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import kotlin.math.abs
import kotlin.math.max

/**
 * The Kotlin decoder against the Python one: golden files written by `featherface_mobile.golden`
 * (raw model outputs of real images + the faces Python decoded from them, docs/formats.md).
 * The directory comes from FEATHERFACE_GOLDEN_DIR (or -Dfeatherface.golden.dir); it is required.
 */
class GoldenVectorTest {
    private class Golden(val file: File, val root: JsonObject) {
        val input = DetectorConfig.readInput(root.obj("input"))
        val priors = DetectorConfig.readPriors(root.obj("priors"))
        val thresholds = DetectorConfig.readThresholds(root.obj("thresholds"))
        val letterbox = root.obj("letterbox").let {
            Letterbox(it.double("scale_x"), it.double("scale_y"), it.int("pad_x"), it.int("pad_y"), it.int("image_width"), it.int("image_height"))
        }
        val raw = root.obj("raw")
        val faces = root.objects("faces")
    }

    private fun goldenDir(): File {
        val path = (System.getProperty("featherface.golden.dir") ?: System.getenv("FEATHERFACE_GOLDEN_DIR"))?.takeIf { it.isNotBlank() }
            ?: throw AssertionError("FEATHERFACE_GOLDEN_DIR is not set: write golden vectors with `python -m featherface_mobile.golden --out DIR` and set it to DIR")
        val dir = File(path)
        if (!File(dir, "index.json").isFile) fail("$dir/index.json not found: FEATHERFACE_GOLDEN_DIR must point at a golden directory")
        return dir
    }

    private fun goldens(): List<Golden> {
        val dir = goldenDir()
        val index = Json.parseObject(File(dir, "index.json").readText(), "index.json")
        assertEquals("featherface-golden-index/1", index.string("format"))
        val files = index.array("files").map { it as String }
        assertTrue("index.json lists no golden files", files.isNotEmpty())
        return files.map { name ->
            val f = File(dir, name)
            val root = Json.parseObject(f.readText(), name)
            assertEquals("$name: format", "featherface-golden/1", root.string("format"))
            Golden(f, root)
        }
    }

    @Test
    fun decodedFacesMatchPythonWithinOneHundredthOfAPixel() {
        val tolerance = 0.01
        var worst = 0.0
        var faces = 0
        val all = goldens()
        for (g in all) {
            val name = g.file.name
            val decoder = FaceDecoder(g.input.width, g.input.height, g.priors, g.thresholds)
            assertEquals("$name: num_priors", g.root.int("num_priors"), decoder.numPriors)
            val got = decoder.decode(g.raw.floats("loc"), g.raw.floats("conf"), g.raw.floats("landms"), g.letterbox)
            assertEquals("$name: number of faces", g.faces.size, got.size)
            for ((k, expected) in g.faces.withIndex()) {
                val face = got[k]
                val box = expected.doubles("box")
                val lms = expected.doubles("landmarks")
                val actual = doubleArrayOf(face.x1.toDouble(), face.y1.toDouble(), face.x2.toDouble(), face.y2.toDouble()) +
                    face.landmarks.map { it.toDouble() }
                val wanted = box + lms
                for (m in wanted.indices) {
                    val err = abs(actual[m] - wanted[m])
                    worst = max(worst, err)
                    if (err > tolerance) {
                        fail("$name: face $k value $m (${if (m < 4) "box" else "landmark"}) is ${actual[m]}, Python says ${wanted[m]} (|diff| $err > $tolerance)")
                    }
                }
                // Same order after NMS: each face's score matches the Python face at the same position.
                assertEquals("$name: face $k score", expected.double("score"), face.score.toDouble(), 1e-6)
            }
            faces += got.size
        }
        println("golden: ${all.size} files, $faces faces, max coordinate error ${"%.2e".format(worst)} px")
    }

    @Test
    fun letterboxOfTheImageSizeMatchesPython() {
        for (g in goldens()) {
            val lb = Letterbox.fit(g.letterbox.imageWidth, g.letterbox.imageHeight, g.input.width, g.input.height)
            assertEquals("${g.file.name}: pad_x", g.letterbox.padX, lb.padX)
            assertEquals("${g.file.name}: pad_y", g.letterbox.padY, lb.padY)
            assertEquals("${g.file.name}: scale_x", g.letterbox.scaleX, lb.scaleX, 1e-12)
            assertEquals("${g.file.name}: scale_y", g.letterbox.scaleY, lb.scaleY, 1e-12)
        }
    }

    @Test
    fun decodingIsSeparableFromTheLetterbox() {
        // Input-pixel faces mapped back by hand equal the faces decoded with the letterbox.
        for (g in goldens()) {
            val decoder = FaceDecoder(g.input.width, g.input.height, g.priors, g.thresholds)
            val loc = g.raw.floats("loc"); val conf = g.raw.floats("conf"); val landms = g.raw.floats("landms")
            val inInput = decoder.decode(loc, conf, landms)
            val inImage = decoder.decode(loc, conf, landms, g.letterbox)
            assertEquals(inImage, inInput.map { it.mapPoints(g.letterbox::toImageX, g.letterbox::toImageY) })
        }
    }
}
