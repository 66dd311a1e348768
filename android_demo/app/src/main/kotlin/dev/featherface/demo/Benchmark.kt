package dev.featherface.demo

import android.content.Context
import android.os.Build
import android.util.Log
import dev.featherface.core.BenchmarkReport
import dev.featherface.core.LatencySummary
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.withContext
import java.io.File
import java.util.concurrent.Executors

/** What to benchmark; read from intent extras (am start) or instrumentation arguments (am instrument). */
data class BenchmarkOptions(
    val delegate: DelegateChoice = DelegateChoice.CPU,
    val threads: Int = DetectorSettings.DEFAULT_THREADS,
    val warmup: Int = DEFAULT_WARMUP,
    val runs: Int = DEFAULT_RUNS,
    /** A folder holding a bundle's manifest.json and .tflite files (pushed by the host), instead of the APK's assets. */
    val modelDir: String? = null,
) {
    init {
        require(warmup >= 0) { "warmup must be >= 0, got $warmup" }
        require(runs >= 1) { "runs must be >= 1, got $runs" }
    }

    companion object {
        const val ARG_DELEGATE = "delegate"
        const val ARG_THREADS = "threads"
        const val ARG_WARMUP = "warmup"
        const val ARG_RUNS = "runs"
        const val ARG_MODEL_DIR = "model_dir"
        const val DEFAULT_WARMUP = 10
        const val DEFAULT_RUNS = 50

        /** [arg] returns an argument as text, or null when absent (extras may be ints or strings). */
        fun from(arg: (String) -> String?): BenchmarkOptions {
            fun int(key: String, default: Int) =
                arg(key)?.let { it.toIntOrNull() ?: throw IllegalArgumentException("$key must be an integer, got '$it'") } ?: default
            return BenchmarkOptions(
                delegate = DelegateChoice.parse(arg(ARG_DELEGATE)),
                threads = int(ARG_THREADS, DetectorSettings.DEFAULT_THREADS),
                warmup = int(ARG_WARMUP, DEFAULT_WARMUP),
                runs = int(ARG_RUNS, DEFAULT_RUNS),
                modelDir = arg(ARG_MODEL_DIR)?.takeIf { it.isNotBlank() },
            )
        }
    }
}

/**
 * N warm-up + M timed inferences on the bundled image (or on the model and image in
 * [BenchmarkOptions.modelDir]), on one dedicated thread (the GPU delegate's requirement). The report
 * goes to logcat (tag [TAG], one line starting with [LOG_PREFIX]) and to [FILE_NAME] in the app's
 * external files dir, which `adb pull` can read without root.
 */
object Benchmark {
    const val TAG = "FeatherFaceBench"
    const val LOG_PREFIX = "BENCHMARK_JSON "
    const val FILE_NAME = "benchmark.json"

    suspend fun run(context: Context, options: BenchmarkOptions): BenchmarkReport =
        Executors.newSingleThreadExecutor().asCoroutineDispatcher().use { thread ->
            withContext(thread) { measure(context, options) }
        }

    private fun measure(context: Context, options: BenchmarkOptions): BenchmarkReport {
        val modelDir = options.modelDir?.let(::File)
        val model = if (modelDir != null) ModelAssets.load(modelDir) else ModelAssets.load(context)
        val (image, imageNote) = ModelAssets.benchmarkImage(context, modelDir)
        FaceDetector.create(model, DetectorSettings(options.delegate, options.threads)).use { detector ->
            repeat(options.warmup) { detector.detect(image) }
            val inference = DoubleArray(options.runs)
            val total = DoubleArray(options.runs)
            var faces = 0
            for (k in 0 until options.runs) {
                val d = detector.detect(image)
                inference[k] = d.inferenceMs
                total[k] = d.totalMs
                faces = d.faces.size
            }
            val notes = listOfNotNull(
                "image: $imageNote",
                modelDir?.let { "model: ${it.path}" },
                detector.fallbackReason?.let { "${options.delegate.label} fell back to the CPU: $it" },
            )
            return BenchmarkReport(
                device = deviceName(),
                androidRelease = "${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})",
                model = model.config.modelName,
                artefact = model.artefact.file,
                delegate = options.delegate.key,
                delegateUsed = detector.backend.key,
                threads = options.threads,
                warmup = options.warmup,
                runs = options.runs,
                inference = LatencySummary.of(inference),
                endToEnd = LatencySummary.of(total),
                faces = faces,
                note = notes.joinToString("; "),
            )
        }
    }

    /** Logs [json] and writes it to the benchmark file; returns the file. */
    fun publish(context: Context, json: String): File {
        Log.i(TAG, LOG_PREFIX + json)
        val dir = context.getExternalFilesDir(null) ?: context.filesDir
        val file = File(dir, FILE_NAME)
        val tmp = File(dir, "$FILE_NAME.tmp")
        tmp.writeText(json + "\n")
        if (!tmp.renameTo(file)) throw IllegalStateException("could not write $file")
        Log.i(TAG, "written to ${file.absolutePath}")
        return file
    }

    fun errorJson(options: BenchmarkOptions, e: Throwable): String =
        "{\"format\":${BenchmarkReport.quote(BenchmarkReport.FORMAT)},\"device\":${BenchmarkReport.quote(deviceName())}," +
            "\"delegate\":${BenchmarkReport.quote(options.delegate.key)},\"threads\":${options.threads}," +
            "\"error\":${BenchmarkReport.quote("${e.javaClass.simpleName}: ${e.message}")}}"

    private fun deviceName(): String {
        val soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) " (${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL})" else ""
        return "${Build.MANUFACTURER} ${Build.MODEL}$soc"
    }
}
