package dev.featherface.demo

import android.content.Context
import androidx.core.content.edit

/** Where inference runs: LiteRT's XNNPACK CPU kernels, the GPU delegate or the NNAPI delegate. */
enum class DelegateChoice(val key: String, val label: String) {
    CPU("cpu", "CPU (XNNPACK)"),
    GPU("gpu", "GPU"),
    NNAPI("nnapi", "NNAPI");

    companion object {
        fun parse(key: String?): DelegateChoice {
            if (key == null) return CPU
            return values().firstOrNull { it.key.equals(key, ignoreCase = true) || it.name.equals(key, ignoreCase = true) }
                ?: throw IllegalArgumentException("unknown delegate '$key'; use one of ${values().joinToString { it.key }}")
        }
    }
}

data class DetectorSettings(val delegate: DelegateChoice = DelegateChoice.CPU, val threads: Int = DEFAULT_THREADS) {
    init {
        require(threads in 1..16) { "threads must be 1..16, got $threads" }
    }

    companion object {
        val DEFAULT_THREADS = Runtime.getRuntime().availableProcessors().coerceIn(1, 4)
    }
}

/** The user's delegate and thread choice, kept across launches. */
class SettingsStore(context: Context) {
    private val prefs = context.getSharedPreferences("detector", Context.MODE_PRIVATE)

    fun load(): DetectorSettings {
        val delegate = runCatching { DelegateChoice.parse(prefs.getString(KEY_DELEGATE, null)) }.getOrDefault(DelegateChoice.CPU)
        val threads = prefs.getInt(KEY_THREADS, DetectorSettings.DEFAULT_THREADS).coerceIn(1, 16)
        return DetectorSettings(delegate, threads)
    }

    fun save(settings: DetectorSettings) = prefs.edit {
        putString(KEY_DELEGATE, settings.delegate.key)
        putInt(KEY_THREADS, settings.threads)
    }

    private companion object {
        const val KEY_DELEGATE = "delegate"
        const val KEY_THREADS = "threads"
    }
}
