package dev.featherface.core

import kotlin.math.ceil

/** Median, p90 and mean of a set of durations in milliseconds; FPS from the mean. */
data class LatencySummary(val count: Int, val meanMs: Double, val medianMs: Double, val p90Ms: Double, val minMs: Double, val maxMs: Double) {
    /** Frames per second at the median latency (0 when nothing was measured). */
    val fps: Double get() = if (medianMs > 0) 1000.0 / medianMs else 0.0

    companion object {
        val EMPTY = LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)

        fun of(samplesMs: DoubleArray): LatencySummary {
            if (samplesMs.isEmpty()) return EMPTY
            val sorted = samplesMs.sortedArray()
            return LatencySummary(
                count = sorted.size,
                meanMs = sorted.average(),
                medianMs = percentile(sorted, 50.0),
                p90Ms = percentile(sorted, 90.0),
                minMs = sorted.first(),
                maxMs = sorted.last(),
            )
        }
    }
}

/**
 * Percentile of sorted values with linear interpolation between closest ranks (NumPy's default),
 * so the Android and Python benchmark reports agree on what "p90" means.
 */
fun percentile(sorted: DoubleArray, q: Double): Double {
    require(sorted.isNotEmpty()) { "percentile of no values" }
    require(q in 0.0..100.0) { "percentile must be in 0..100, got $q" }
    val pos = (sorted.size - 1) * q / 100.0
    val lo = pos.toInt()
    val hi = ceil(pos).toInt()
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

/**
 * The last [capacity] durations of one pipeline stage (a ring buffer), for the live overlay: the
 * summary always describes the most recent frames, not the whole session.
 */
class SlidingWindow(val capacity: Int) {
    private val values = DoubleArray(capacity)
    private var next = 0
    private var size = 0

    init {
        require(capacity > 0) { "window capacity must be positive" }
    }

    @Synchronized
    fun add(ms: Double) {
        values[next] = ms
        next = (next + 1) % capacity
        if (size < capacity) size++
    }

    @Synchronized
    fun summary(): LatencySummary = LatencySummary.of(values.copyOf(size))

    @Synchronized
    fun clear() {
        next = 0
        size = 0
    }
}

/**
 * Frame timing of the live camera pipeline: one [SlidingWindow] per stage plus the frame timestamps,
 * so FPS is what the user sees (frames delivered per second), not 1 / inference time.
 */
class PipelineStats(windowSize: Int = 60) {
    val preprocess = SlidingWindow(windowSize)
    val inference = SlidingWindow(windowSize)
    val postprocess = SlidingWindow(windowSize)
    private val frameTimesNs = LongArray(windowSize)
    private var next = 0
    private var size = 0

    @Synchronized
    fun frame(timestampNs: Long, preMs: Double, inferMs: Double, postMs: Double) {
        preprocess.add(preMs)
        inference.add(inferMs)
        postprocess.add(postMs)
        frameTimesNs[next] = timestampNs
        next = (next + 1) % frameTimesNs.size
        if (size < frameTimesNs.size) size++
    }

    /** Frames per second over the window: (frames - 1) / (newest - oldest timestamp). */
    @Synchronized
    fun fps(): Double {
        if (size < 2) return 0.0
        val newest = frameTimesNs[(next - 1 + frameTimesNs.size) % frameTimesNs.size]
        val oldest = frameTimesNs[(next - size + frameTimesNs.size) % frameTimesNs.size]
        val spanNs = newest - oldest
        return if (spanNs > 0) (size - 1) * 1e9 / spanNs else 0.0
    }

    @Synchronized
    fun clear() {
        preprocess.clear(); inference.clear(); postprocess.clear()
        next = 0; size = 0
    }
}
