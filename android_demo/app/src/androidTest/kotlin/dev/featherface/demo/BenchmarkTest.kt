package dev.featherface.demo

import android.os.Bundle
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Test
import org.junit.runner.RunWith

/**
 * The benchmark as an instrumented test, for scripts and device farms:
 *   adb shell am instrument -w -e class dev.featherface.demo.BenchmarkTest \
 *       -e delegate gpu -e threads 4 -e warmup 10 -e runs 50 \
 *       dev.featherface.demo.test/androidx.test.runner.AndroidJUnitRunner
 * The JSON is printed as an instrumentation status (key "benchmark"), logged under FeatherFaceBench
 * and written where `adb pull /sdcard/Android/data/dev.featherface.demo/files/benchmark.json` finds it.
 */
@RunWith(AndroidJUnit4::class)
class BenchmarkTest {
    @Test
    fun benchmarkThePackagedModel() {
        val instrumentation = InstrumentationRegistry.getInstrumentation()
        val args = InstrumentationRegistry.getArguments()
        val options = BenchmarkOptions.from { args.getString(it) }
        val context = instrumentation.targetContext
        val report = runBlocking { Benchmark.run(context, options) }
        val json = report.toJson()
        Benchmark.publish(context, json)
        instrumentation.sendStatus(0, Bundle().apply { putString("benchmark", json) })
        assertEquals(options.runs, report.inference.count)
    }
}
