package dev.featherface.core

import org.junit.Assert.assertEquals
import org.junit.Test

/**
 * Keeps src/test/resources/benchmark_example.json equal to what [BenchmarkReport.toJson] writes, so the
 * host's parser (`featherface bench --device android`, tests/test_device_bench.py) is tested against
 * the real format. The file holds exactly what `Benchmark.publish` writes: the JSON line and a newline.
 */
class BenchmarkReportExampleTest {
    @Test
    fun toJsonWritesTheCheckedInExample() {
        val expected = javaClass.getResource(EXAMPLE)?.readText()
            ?: throw AssertionError("$EXAMPLE is not on the test classpath: it lives in detector-core/src/test/resources")
        assertEquals(
            "BenchmarkReport.toJson() no longer writes src/test/resources$EXAMPLE; if the change is intended, " +
                "replace the file with the new line and update featherface_mobile/device_bench.py",
            expected,
            example().toJson() + "\n",
        )
    }

    @Test
    fun exampleParsesWithTheModuleJsonReader() {
        val root = Json.parseObject(example().toJson(), EXAMPLE)
        assertEquals(BenchmarkReport.FORMAT, root.string("format"))
        assertEquals(12.0, root.double("median_ms"), 0.0)
        assertEquals(1000.0 / 12.0, root.double("fps"), 5e-4)
        assertEquals(NOTE, root.string("note"))
    }

    companion object {
        const val EXAMPLE = "/benchmark_example.json"

        /** A GPU request that fell back to the CPU, on a model pushed by the host (the `model_dir` extra). */
        const val NOTE = "image: benchmark.jpg 1024x768; model: /sdcard/Android/data/dev.featherface.demo/files/model; " +
            "GPU fell back to the CPU: the GPU delegate rejected op \"DEQUANTIZE\""

        fun example(): BenchmarkReport {
            val inference = doubleArrayOf(12.4, 11.9, 12.0, 11.8, 12.6, 13.9, 11.7, 12.0, 12.0, 15.2)
            val endToEnd = doubleArrayOf(17.1, 16.8, 16.9, 16.6, 17.4, 18.8, 16.5, 17.0, 16.9, 20.3)
            return BenchmarkReport(
                device = "Google Pixel 7 (Google Tensor G2)",
                androidRelease = "14 (API 34)",
                model = "retinaface-mnet025",
                artefact = "mobilenet0.25_Final_int8.tflite",
                delegate = "gpu",
                delegateUsed = "cpu",
                threads = 4,
                warmup = 10,
                runs = inference.size,
                inference = LatencySummary.of(inference),
                endToEnd = LatencySummary.of(endToEnd),
                faces = 1,
                note = NOTE,
            )
        }
    }
}
