package dev.featherface.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class ConfigTest {
    /** The manifest example of docs/formats.md, with its placeholders filled in. */
    private val manifest = """
        {
          "format": "featherface-package/1",
          "model": {"name": "featherface-v1", "version": "0.1.0", "parameters": 592371},
          "input": {"width": 640, "height": 640, "channel_order": "BGR", "mean": [104.0, 117.0, 123.0], "resize": "letterbox"},
          "priors": {"min_sizes": [[16, 32], [64, 128], [256, 512]], "steps": [8, 16, 32], "variance": [0.1, 0.2], "clip": false},
          "thresholds": {"score": 0.5, "nms_iou": 0.4, "top_k": 5000, "keep_top_k": 750},
          "outputs": [
            {"name": "loc", "shape": [1, 16800, 4]},
            {"name": "conf", "shape": [1, 16800, 2], "softmax": true},
            {"name": "landms", "shape": [1, 16800, 10]}
          ],
          "artefacts": [
            {"file": "featherface-v1_fp32.tflite", "format": "tflite", "precision": "fp32", "layout": "NHWC",
             "input_dtype": "float32", "bytes": 1, "sha256": "x", "verify": null},
            {"file": "featherface-v1_int8.tflite", "format": "tflite", "precision": "int8", "layout": "NHWC",
             "input_dtype": "float32", "bytes": 612345, "sha256": "x", "verify": {"max_abs": 0.1}, "accuracy": {"easy": 0.0, "medium": 0.0, "hard": 0.0}},
            {"file": "featherface-v1.mlpackage", "format": "coreml", "precision": "fp16", "layout": "NCHW", "input_dtype": "float32", "bytes": 1, "sha256": "x"}
          ],
          "golden": "golden/index.json"
        }
    """.trimIndent()

    @Test
    fun readsTheDocumentedManifest() {
        val c = DetectorConfig.fromManifest(manifest)
        assertEquals("featherface-v1", c.modelName)
        assertEquals(640, c.input.width)
        assertArrayEquals(floatArrayOf(104f, 117f, 123f), c.input.meanBgr, 0f)
        assertEquals(PriorConfig.DEFAULT, c.priors)
        assertEquals(Thresholds(0.5f, 0.4f, 5000, 750), c.thresholds)
        assertEquals(listOf("loc", "conf", "landms"), c.outputs.map { it.name })
        assertTrue(c.outputs[1].softmax)
        assertEquals(16800, priorCount(c.input.width, c.input.height, c.priors))
        assertEquals(c.outputs[0].shape[1], FaceDecoder(c).numPriors)
    }

    @Test
    fun picksTheInt8TfliteArtefact() {
        val c = DetectorConfig.fromManifest(manifest)
        assertEquals("featherface-v1_int8.tflite", c.artefactFor("tflite").file)
        assertEquals("featherface-v1_fp32.tflite", c.artefactFor("tflite", listOf("fp32")).file)
        val e = assertThrows(IllegalArgumentException::class.java) { c.artefactFor("onnx") }
        assertTrue(e.message!!, e.message!!.startsWith("the package has no onnx artefact"))
    }

    @Test
    fun rejectsAnotherFormatVersionWithTheFix() {
        val e = assertThrows(JsonException::class.java) {
            DetectorConfig.fromManifest(manifest.replace("featherface-package/1", "featherface-package/2"))
        }
        assertTrue(e.message!!, e.message!!.startsWith("manifest.json: format is 'featherface-package/2'"))
    }

    @Test
    fun missingFieldsAreNamed() {
        val e = assertThrows(JsonException::class.java) {
            DetectorConfig.fromManifest(manifest.replace("\"nms_iou\": 0.4, ", ""))
        }
        assertEquals("manifest.json: thresholds.nms_iou is missing", e.message)
    }

    @Test
    fun outputsAreFoundByNameThenByLastDimension() {
        val c = DetectorConfig.fromManifest(manifest)
        val named = listOf(
            TensorInfo(0, "StatefulPartitionedCall:landms", intArrayOf(1, 16800, 10)),
            TensorInfo(1, "StatefulPartitionedCall:loc", intArrayOf(1, 16800, 4)),
            TensorInfo(2, "StatefulPartitionedCall:conf", intArrayOf(1, 16800, 2)),
        )
        assertEquals(OutputBinding(loc = 1, conf = 2, landms = 0, byName = true), OutputBinding.resolve(named, c))
        val plain = listOf(
            TensorInfo(0, "Identity_1", intArrayOf(1, 16800, 2)),
            TensorInfo(1, "Identity", intArrayOf(1, 16800, 4)),
            TensorInfo(2, "Identity_2", intArrayOf(1, 16800, 10)),
        )
        assertEquals(OutputBinding(loc = 1, conf = 0, landms = 2, byName = false), OutputBinding.resolve(plain, c))
        assertTrue(OutputBinding.nameMatches("serving_default_loc:0", "loc"))
        assertFalse(OutputBinding.nameMatches("Identity_1", "loc"))
        val ambiguous = plain + TensorInfo(3, "extra", intArrayOf(1, 5, 4))
        assertThrows(IllegalArgumentException::class.java) { OutputBinding.resolve(ambiguous, c) }
    }
}
