package dev.featherface.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.hardware.display.DisplayManager
import android.os.Bundle
import android.os.SystemClock
import android.view.Menu
import android.view.MenuItem
import android.view.View
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import dev.featherface.core.LatencySummary
import dev.featherface.core.PipelineStats
import dev.featherface.demo.databinding.ActivityMainBinding
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.util.Locale
import java.util.concurrent.Executors

/**
 * Camera screen: CameraX preview + ImageAnalysis (latest frame only) feeding [FaceDetector] on one
 * background thread; boxes and landmarks drawn by [FaceOverlayView]; FPS and per-stage latency over
 * a sliding window. The delegate and thread count are chosen in the options menu.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var binding: ActivityMainBinding
    private lateinit var settingsStore: SettingsStore
    private var settings = DetectorSettings()

    // The detector lives on this one thread: GPU delegates must run where they were created.
    private val analysisExecutor = Executors.newSingleThreadExecutor()
    private val analysisDispatcher = analysisExecutor.asCoroutineDispatcher()
    private var detector: FaceDetector? = null // touched only on analysisExecutor
    private var model: PackagedModel? = null // touched only on analysisExecutor

    @Volatile private var backendLine = ""
    @Volatile private var lastFaceCount = 0
    @Volatile private var lensFacing = CameraSelector.LENS_FACING_FRONT
    private val stats = PipelineStats(windowSize = 60)

    private var cameraProvider: ProcessCameraProvider? = null
    private var preview: Preview? = null
    private var analysis: ImageAnalysis? = null

    private val requestCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showMessage(getString(R.string.camera_permission_denied))
    }

    // A 180-degree turn does not recreate the activity: keep the use cases' target rotation current.
    private val displayListener = object : DisplayManager.DisplayListener {
        override fun onDisplayAdded(displayId: Int) = Unit
        override fun onDisplayRemoved(displayId: Int) = Unit
        override fun onDisplayChanged(displayId: Int) {
            val display = binding.preview.display ?: return
            if (display.displayId == displayId) {
                preview?.targetRotation = display.rotation
                analysis?.targetRotation = display.rotation
            }
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)
        settingsStore = SettingsStore(this)
        settings = settingsStore.load()
        lensFacing = savedInstanceState?.getInt(KEY_LENS, CameraSelector.LENS_FACING_FRONT) ?: CameraSelector.LENS_FACING_FRONT
        getSystemService(DisplayManager::class.java).registerDisplayListener(displayListener, null)

        loadDetector()
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                while (isActive) {
                    binding.stats.text = statsText()
                    delay(STATS_REFRESH_MS)
                }
            }
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putInt(KEY_LENS, lensFacing)
    }

    override fun onDestroy() {
        super.onDestroy()
        getSystemService(DisplayManager::class.java).unregisterDisplayListener(displayListener)
        analysis?.clearAnalyzer()
        analysisExecutor.execute {
            detector?.close()
            detector = null
        }
        analysisExecutor.shutdown()
    }

    /** (Re)creates the detector for the current settings on the analysis thread; reports fallbacks. */
    private fun loadDetector() {
        val wanted = settings
        lifecycleScope.launch {
            val result = withContext(analysisDispatcher) {
                detector?.close()
                detector = null
                runCatching {
                    val m = model ?: ModelAssets.load(this@MainActivity).also { model = it }
                    FaceDetector.create(m, wanted).also {
                        detector = it
                        stats.clear()
                    }
                }
            }
            result.onSuccess { d ->
                backendLine = "${d.model.config.modelName} ${d.model.artefact.precision} | ${d.backendDescription}"
                val reason = d.fallbackReason
                if (reason != null) {
                    showMessage(getString(R.string.delegate_fallback, d.requested.delegate.label, reason, d.backendDescription))
                } else {
                    hideMessage()
                }
            }.onFailure { e ->
                backendLine = "no detector"
                showMessage(if (e is ModelMissingException) getString(R.string.no_model) else "Could not load the model: ${e.message}")
            }
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            cameraProvider = future.get()
            bindCamera()
        }, ContextCompat.getMainExecutor(this))
    }

    private fun bindCamera() {
        val provider = cameraProvider ?: return
        var selector = CameraSelector.Builder().requireLensFacing(lensFacing).build()
        if (!provider.hasCamera(selector)) {
            lensFacing = if (lensFacing == CameraSelector.LENS_FACING_FRONT) CameraSelector.LENS_FACING_BACK else CameraSelector.LENS_FACING_FRONT
            selector = CameraSelector.Builder().requireLensFacing(lensFacing).build()
        }
        val rotation = binding.preview.display?.rotation ?: android.view.Surface.ROTATION_0
        // Same aspect ratio for preview and analysis, so FILL_CENTER maps analysis pixels onto the preview.
        val resolution = ResolutionSelector.Builder()
            .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY)
            .build()
        val newPreview = Preview.Builder()
            .setResolutionSelector(resolution)
            .setTargetRotation(rotation)
            .build()
        newPreview.setSurfaceProvider(binding.preview.surfaceProvider)
        val newAnalysis = ImageAnalysis.Builder()
            .setResolutionSelector(resolution)
            .setTargetRotation(rotation)
            .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
            .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
            .build()
        newAnalysis.setAnalyzer(analysisExecutor, ::analyze)
        provider.unbindAll()
        provider.bindToLifecycle(this, selector, newPreview, newAnalysis)
        preview = newPreview
        analysis = newAnalysis
        binding.overlay.clear()
        stats.clear()
    }

    /** Runs on [analysisExecutor] for the latest frame only (older frames are dropped by CameraX). */
    private fun analyze(image: ImageProxy) {
        image.use {
            val d = detector ?: return
            val t0 = SystemClock.elapsedRealtimeNanos()
            val bitmap = image.toBitmap()
            val convertMs = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6
            val detection = try {
                d.detect(bitmap, image.imageInfo.rotationDegrees)
            } catch (e: Exception) {
                runOnUiThread { showMessage("Inference failed: ${e.message}") }
                return
            }
            stats.frame(SystemClock.elapsedRealtimeNanos(), convertMs + detection.preprocessMs, detection.inferenceMs, detection.postprocessMs)
            lastFaceCount = detection.faces.size
            val mirror = lensFacing == CameraSelector.LENS_FACING_FRONT
            binding.overlay.post { binding.overlay.show(detection.faces, detection.imageWidth, detection.imageHeight, mirror) }
        }
    }

    private fun statsText(): String {
        fun line(name: String, s: LatencySummary) =
            String.format(Locale.ROOT, "%-6s %6.1f ms  p90 %6.1f", name, s.medianMs, s.p90Ms)
        val pre = stats.preprocess.summary()
        return listOf(
            backendLine,
            String.format(Locale.ROOT, "FPS %5.1f  faces %d  (last %d frames)", stats.fps(), lastFaceCount, pre.count),
            line("pre", pre),
            line("infer", stats.inference.summary()),
            line("post", stats.postprocess.summary()),
        ).joinToString("\n")
    }

    private fun showMessage(text: String) {
        binding.message.text = text
        binding.message.visibility = View.VISIBLE
    }

    private fun hideMessage() {
        binding.message.visibility = View.GONE
    }

    override fun onCreateOptionsMenu(menu: Menu): Boolean {
        menuInflater.inflate(R.menu.main, menu)
        return true
    }

    override fun onPrepareOptionsMenu(menu: Menu): Boolean {
        val delegateItem = when (settings.delegate) {
            DelegateChoice.CPU -> R.id.delegate_cpu
            DelegateChoice.GPU -> R.id.delegate_gpu
            DelegateChoice.NNAPI -> R.id.delegate_nnapi
        }
        menu.findItem(delegateItem)?.isChecked = true
        THREAD_ITEMS.entries.firstOrNull { it.value == settings.threads }?.let { menu.findItem(it.key)?.isChecked = true }
        return super.onPrepareOptionsMenu(menu)
    }

    override fun onOptionsItemSelected(item: MenuItem): Boolean {
        val delegate = when (item.itemId) {
            R.id.delegate_cpu -> DelegateChoice.CPU
            R.id.delegate_gpu -> DelegateChoice.GPU
            R.id.delegate_nnapi -> DelegateChoice.NNAPI
            else -> null
        }
        val threads = THREAD_ITEMS[item.itemId]
        when {
            delegate != null -> applySettings(settings.copy(delegate = delegate))
            threads != null -> applySettings(settings.copy(threads = threads))
            item.itemId == R.id.menu_switch_camera -> {
                lensFacing = if (lensFacing == CameraSelector.LENS_FACING_FRONT) CameraSelector.LENS_FACING_BACK else CameraSelector.LENS_FACING_FRONT
                bindCamera()
            }
            item.itemId == R.id.menu_benchmark -> startActivity(
                Intent(this, BenchmarkActivity::class.java)
                    .putExtra(BenchmarkOptions.ARG_DELEGATE, settings.delegate.key)
                    .putExtra(BenchmarkOptions.ARG_THREADS, settings.threads),
            )
            else -> return super.onOptionsItemSelected(item)
        }
        return true
    }

    private fun applySettings(new: DetectorSettings) {
        if (new == settings) return
        settings = new
        settingsStore.save(new)
        invalidateOptionsMenu()
        loadDetector()
    }

    private companion object {
        const val KEY_LENS = "lens_facing"
        const val STATS_REFRESH_MS = 250L
        val THREAD_ITEMS = mapOf(R.id.threads_1 to 1, R.id.threads_2 to 2, R.id.threads_4 to 4, R.id.threads_8 to 8)
    }
}
