package dev.featherface.core

import java.util.Locale

/**
 * The benchmark result the app writes to logcat and to a file: device, delegate, threads,
 * latency (median / p90 ms) and FPS. [toJson] is one line of JSON with stable keys.
 */
data class BenchmarkReport(
    val device: String,
    val androidRelease: String,
    val model: String,
    val artefact: String,
    val delegate: String,
    /** The delegate that actually ran, when the requested one fell back (else equal to [delegate]). */
    val delegateUsed: String,
    val threads: Int,
    val warmup: Int,
    val runs: Int,
    val inference: LatencySummary,
    val endToEnd: LatencySummary,
    val faces: Int,
    val note: String? = null,
) {
    fun toJson(): String {
        val sb = StringBuilder("{")
        fun key(k: String) { if (sb.length > 1) sb.append(','); sb.append(quote(k)).append(':') }
        fun str(k: String, v: String?) { key(k); sb.append(if (v == null) "null" else quote(v)) }
        fun num(k: String, v: Double) { key(k); sb.append(String.format(Locale.ROOT, "%.3f", v)) }
        fun int(k: String, v: Int) { key(k); sb.append(v) }
        str("format", FORMAT)
        str("device", device); str("android", androidRelease); str("model", model); str("artefact", artefact)
        str("delegate", delegate); str("delegate_used", delegateUsed); int("threads", threads)
        int("warmup", warmup); int("runs", runs)
        num("median_ms", inference.medianMs); num("p90_ms", inference.p90Ms); num("mean_ms", inference.meanMs)
        num("min_ms", inference.minMs); num("max_ms", inference.maxMs); num("fps", inference.fps)
        num("end_to_end_median_ms", endToEnd.medianMs); num("end_to_end_p90_ms", endToEnd.p90Ms)
        num("end_to_end_fps", endToEnd.fps)
        int("faces", faces)
        str("note", note)
        return sb.append('}').toString()
    }

    companion object {
        const val FORMAT = "featherface-android-benchmark/1"

        fun quote(s: String): String {
            val sb = StringBuilder("\"")
            for (c in s) when {
                c == '"' -> sb.append("\\\"")
                c == '\\' -> sb.append("\\\\")
                c == '\n' -> sb.append("\\n")
                c == '\r' -> sb.append("\\r")
                c == '\t' -> sb.append("\\t")
                c < ' ' -> sb.append(String.format(Locale.ROOT, "\\u%04x", c.code))
                else -> sb.append(c)
            }
            return sb.append('"').toString()
        }
    }
}
