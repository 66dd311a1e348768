package dev.featherface.demo

import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.os.Build
import android.os.SystemClock
import dev.featherface.core.Affine
import dev.featherface.core.Face
import dev.featherface.core.FaceDecoder
import dev.featherface.core.Letterbox
import dev.featherface.core.OutputBinding
import dev.featherface.core.OutputRole
import dev.featherface.core.QuantParams
import dev.featherface.core.TensorInfo
import dev.featherface.core.TensorType
import dev.featherface.core.readOutput
import dev.featherface.core.writeInput
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.roundToInt

/** Faces of one frame, in upright-image pixels, with the time each stage took. */
class Detection(
    val faces: List<Face>,
    val imageWidth: Int,
    val imageHeight: Int,
    val preprocessMs: Double,
    val inferenceMs: Double,
    val postprocessMs: Double,
) {
    val totalMs: Double get() = preprocessMs + inferenceMs + postprocessMs
}

/**
 * The LiteRT interpreter on a packaged model, with the pre- and post-processing of detector-core.
 *
 * Input: the frame is rotated upright and letterboxed into the input size in one bilinear draw, then
 * written NHWC, BGR, minus the mean (quantised with the input tensor's scale / zero point for INT8
 * inputs). Outputs are found by the manifest's names (else by last dimension 4 / 2 / 10),
 * dequantised, and decoded by [FaceDecoder].
 *
 * Not thread-safe, and GPU delegates must be used on the thread that created them: create, use and
 * close a detector on one thread.
 */
class FaceDetector private constructor(
    private val interpreter: Interpreter,
    private val delegate: Delegate?,
    val model: PackagedModel,
    val requested: DetectorSettings,
    /** What actually runs the model: [requested]'s delegate, or the CPU after a fallback. */
    val backend: DelegateChoice,
    /** Why the requested delegate could not run the model (null when it runs). */
    val fallbackReason: String?,
) : Closeable {
    private val config = model.config
    private val width = config.input.width
    private val height = config.input.height
    private val decoder = FaceDecoder(config)

    private val inputType: TensorType
    private val input: ByteBuffer
    private val binding: OutputBinding
    private val outputTypes: Array<TensorType>
    private val outputBuffers: Array<ByteBuffer>
    private val outputMap: Map<Int, Any>
    private val values = OutputRole.values().associateWith { FloatArray(decoder.numPriors * it.lastDim) }

    private val canvasBitmap = Bitmap.createBitmap(width, height, Bitmap.Config.ARGB_8888)
    private val canvas = Canvas(canvasBitmap)
    private val pixels = IntArray(width * height)
    private val paint = Paint(Paint.FILTER_BITMAP_FLAG) // bilinear
    private val matrix = Matrix()
    private val meanColor = config.input.meanBgr.let { (b, g, r) -> Color.rgb(r.roundToInt(), g.roundToInt(), b.roundToInt()) }

    init {
        val inTensor = interpreter.getInputTensor(0)
        val shape = inTensor.shape()
        require(shape.size == 4 && shape[3] == 3) {
            "${model.artefact.file}: input shape ${shape.contentToString()} is not NHWC with 3 channels; export the tflite artefact with an NHWC input"
        }
        require(shape[1] == height && shape[2] == width) {
            "${model.artefact.file}: input is ${shape[2]}x${shape[1]} but the manifest says ${width}x$height; package the model again"
        }
        inputType = inTensor.tensorType()
        input = ByteBuffer.allocateDirect(inTensor.numBytes()).order(ByteOrder.nativeOrder())

        val outputs = (0 until interpreter.outputTensorCount).map { interpreter.getOutputTensor(it) }
        binding = OutputBinding.resolve(outputs.mapIndexed { i, t -> TensorInfo(i, t.name(), t.shape()) }, config)
        for (role in OutputRole.values()) {
            val t = outputs[binding.index(role)]
            require(t.numElements() == decoder.numPriors * role.lastDim) {
                "output ${t.name()} (${role.manifestName}) has shape ${t.shape().contentToString()}, expected [1, ${decoder.numPriors}, ${role.lastDim}]"
            }
        }
        outputTypes = Array(outputs.size) { outputs[it].tensorType() }
        outputBuffers = Array(outputs.size) { ByteBuffer.allocateDirect(outputs[it].numBytes()).order(ByteOrder.nativeOrder()) }
        outputMap = outputBuffers.withIndex().associate { (i, b) -> i to b }
    }

    /** Detects faces in [frame], a camera buffer that must be turned [rotationDegrees] clockwise to be upright. */
    fun detect(frame: Bitmap, rotationDegrees: Int = 0): Detection {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val (uprightW, uprightH) = Affine.uprightSize(frame.width, frame.height, rotationDegrees)
        val letterbox = Letterbox.fit(uprightW, uprightH, width, height)
        matrix.setValues(Affine.sensorToInput(frame.width, frame.height, rotationDegrees, letterbox).toMatrixValues())
        canvas.drawColor(meanColor) // the border becomes 0 after mean subtraction
        canvas.drawBitmap(frame, matrix, paint)
        canvasBitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        input.rewind()
        writeInput(pixels, config.input.meanBgr, inputType, input)
        input.rewind()
        val t1 = SystemClock.elapsedRealtimeNanos()

        for (b in outputBuffers) b.rewind()
        interpreter.runForMultipleInputsOutputs(arrayOf(input), outputMap)
        val t2 = SystemClock.elapsedRealtimeNanos()

        for (role in OutputRole.values()) {
            val i = binding.index(role)
            val dst = values.getValue(role)
            readOutput(outputBuffers[i], outputTypes[i], dst.size, dst)
        }
        val faces = decoder.decode(
            values.getValue(OutputRole.LOC), values.getValue(OutputRole.CONF), values.getValue(OutputRole.LANDMS), letterbox,
        )
        val t3 = SystemClock.elapsedRealtimeNanos()
        return Detection(faces, uprightW, uprightH, (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6)
    }

    /** One line for the overlay and the benchmark report, e.g. "GPU" or "CPU (XNNPACK), 4 threads". */
    val backendDescription: String
        get() = if (backend == DelegateChoice.CPU) "${backend.label}, ${requested.threads} threads" else backend.label

    override fun close() {
        interpreter.close()
        (delegate as? Closeable)?.close()
    }

    companion object {
        /**
         * A detector on [settings]'s delegate; if that delegate cannot run the model (unsupported
         * device, ops it cannot take, a failing first run), one on the CPU with [fallbackReason] set.
         */
        fun create(model: PackagedModel, settings: DetectorSettings): FaceDetector {
            if (settings.delegate == DelegateChoice.CPU) return build(model, settings, DelegateChoice.CPU, null)
            return try {
                build(model, settings, settings.delegate, null)
            } catch (e: Exception) {
                val reason = e.message?.lineSequence()?.firstOrNull { it.isNotBlank() }?.take(160) ?: e.javaClass.simpleName
                build(model, settings, DelegateChoice.CPU, reason)
            }
        }

        private fun build(model: PackagedModel, settings: DetectorSettings, backend: DelegateChoice, fallbackReason: String?): FaceDetector {
            val options = Interpreter.Options().setNumThreads(settings.threads)
            val delegate: Delegate? = when (backend) {
                DelegateChoice.CPU -> {
                    options.setUseXNNPACK(true)
                    null
                }
                DelegateChoice.GPU -> CompatibilityList().use { list ->
                    if (!list.isDelegateSupportedOnThisDevice) {
                        throw UnsupportedOperationException("the GPU delegate does not support this device")
                    }
                    GpuDelegate(list.bestOptionsForThisDevice)
                }
                DelegateChoice.NNAPI -> {
                    if (Build.VERSION.SDK_INT < Build.VERSION_CODES.O_MR1) {
                        throw UnsupportedOperationException("NNAPI needs Android 8.1 or newer")
                    }
                    NnApiDelegate()
                }
            }
            delegate?.let(options::addDelegate)
            var interpreter: Interpreter? = null
            try {
                interpreter = Interpreter(model.buffer, options)
                val detector = FaceDetector(interpreter, delegate, model, settings, backend, fallbackReason)
                // Some delegates accept a graph and fail only when it runs: find out now, not on the first frame.
                detector.detect(Bitmap.createBitmap(model.config.input.width, model.config.input.height, Bitmap.Config.ARGB_8888))
                return detector
            } catch (e: Exception) {
                interpreter?.close()
                (delegate as? Closeable)?.close()
                throw e
            }
        }

        private fun Tensor.tensorType(): TensorType = when (dataType()) {
            DataType.FLOAT32 -> TensorType.Float32
            DataType.INT8 -> TensorType.Int8(quantizationParams().let { QuantParams(it.scale, it.zeroPoint) })
            DataType.UINT8 -> TensorType.UInt8(quantizationParams().let { QuantParams(it.scale, it.zeroPoint) })
            else -> throw IllegalArgumentException("tensor ${name()} is ${dataType()}; the app handles float32, int8 and uint8 tensors")
        }
    }
}
