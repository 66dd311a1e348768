package dev.featherface.demo

import android.os.Bundle
import android.util.Log
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.lifecycleScope
import dev.featherface.demo.databinding.ActivityBenchmarkBinding
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.launch

/**
 * Benchmark mode, runnable from adb:
 *   adb shell am start -W -n dev.featherface.demo/.BenchmarkActivity \
 *       --es delegate cpu --ei threads 4 --ei warmup 10 --ei runs 50 [--ez finish true] [--es model_dir DIR]
 * (model_dir: a folder with a bundle's manifest.json and .tflite files, as `featherface bench --device
 * android` pushes them; without it the model in the APK's assets is measured)
 * then `adb logcat -s FeatherFaceBench` or
 *   adb pull /sdcard/Android/data/dev.featherface.demo/files/benchmark.json
 */
class BenchmarkActivity : AppCompatActivity() {
    private lateinit var binding: ActivityBenchmarkBinding

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityBenchmarkBinding.inflate(layoutInflater)
        setContentView(binding.root)

        val options = try {
            @Suppress("DEPRECATION") // Bundle.get: extras may be given as --ei (int) or --es (string)
            BenchmarkOptions.from { key -> intent.extras?.get(key)?.toString() }
        } catch (e: IllegalArgumentException) {
            binding.report.text = e.message
            Log.e(Benchmark.TAG, "bad benchmark arguments: ${e.message}")
            return
        }
        binding.report.text = getString(R.string.benchmark_running, options.warmup, options.runs, options.delegate.label, options.threads)

        lifecycleScope.launch {
            val json = try {
                Benchmark.run(this@BenchmarkActivity, options).toJson()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                Log.e(Benchmark.TAG, "benchmark failed", e)
                Benchmark.errorJson(options, e)
            }
            val file = Benchmark.publish(this@BenchmarkActivity, json)
            binding.report.text = "${json.replace(",\"", ",\n\"")}\n\nwritten to ${file.absolutePath}"
            if (intent.getBooleanExtra(EXTRA_FINISH, false)) finish()
        }
    }

    companion object {
        const val EXTRA_FINISH = "finish"
    }
}
