package dev.featherface.core

/**
 * What the detector needs to know about a packaged model, read from its manifest.json
 * (`featherface-package/1`, docs/formats.md): the one source of truth for input size, mean,
 * priors, thresholds and output names.
 */
data class InputSpec(
    val width: Int,
    val height: Int,
    /** Per-channel mean in BGR order, subtracted from the 0..255 pixel values. */
    val meanBgr: FloatArray,
    val channelOrder: String = "BGR",
) {
    init {
        require(width > 0 && height > 0) { "input size must be positive, got ${width}x$height" }
        require(meanBgr.size == 3) { "mean needs 3 values (B, G, R), got ${meanBgr.size}" }
        require(channelOrder == "BGR") { "only BGR inputs are supported, the manifest says $channelOrder" }
    }

    override fun equals(other: Any?) = other is InputSpec && width == other.width && height == other.height &&
        meanBgr.contentEquals(other.meanBgr) && channelOrder == other.channelOrder

    override fun hashCode() = (width * 31 + height) * 31 + meanBgr.contentHashCode()
}

data class PriorConfig(
    val minSizes: List<IntArray>,
    val steps: IntArray,
    val variance: DoubleArray,
    val clip: Boolean,
) {
    init {
        require(minSizes.size == steps.size) { "priors: ${minSizes.size} min_sizes levels but ${steps.size} steps" }
        require(variance.size == 2) { "priors: variance needs 2 values, got ${variance.size}" }
        require(steps.all { it > 0 }) { "priors: steps must be positive" }
    }

    override fun equals(other: Any?) = other is PriorConfig && clip == other.clip &&
        steps.contentEquals(other.steps) && variance.contentEquals(other.variance) &&
        minSizes.size == other.minSizes.size && minSizes.indices.all { minSizes[it].contentEquals(other.minSizes[it]) }

    override fun hashCode() = steps.contentHashCode() * 31 + variance.contentHashCode()

    companion object {
        /** RetinaFace / FeatherFace defaults, used only where no manifest is at hand. */
        val DEFAULT = PriorConfig(
            minSizes = listOf(intArrayOf(16, 32), intArrayOf(64, 128), intArrayOf(256, 512)),
            steps = intArrayOf(8, 16, 32),
            variance = doubleArrayOf(0.1, 0.2),
            clip = false,
        )
    }
}

data class Thresholds(
    val score: Float = 0.5f,
    val nmsIou: Float = 0.4f,
    val topK: Int = 5000,
    val keepTopK: Int = 750,
)

/** One model output as the manifest lists it: name and shape, e.g. loc [1, N, 4]. */
data class OutputSpec(val name: String, val shape: IntArray, val softmax: Boolean = false) {
    override fun equals(other: Any?) = other is OutputSpec && name == other.name && shape.contentEquals(other.shape) && softmax == other.softmax
    override fun hashCode() = name.hashCode() * 31 + shape.contentHashCode()
}

/** One exported file in the package, e.g. featherface-v1_int8.tflite. */
data class Artefact(
    val file: String,
    val format: String,
    val precision: String,
    val layout: String?,
    val inputDtype: String,
)

data class DetectorConfig(
    val modelName: String,
    val input: InputSpec,
    val priors: PriorConfig,
    val thresholds: Thresholds,
    val outputs: List<OutputSpec> = emptyList(),
    val artefacts: List<Artefact> = emptyList(),
) {
    /** The manifest's output name for each role (loc, conf, landms); the role itself if not listed. */
    fun outputName(role: OutputRole): String =
        outputs.firstOrNull { it.name == role.manifestName }?.name ?: role.manifestName

    /**
     * The artefact an app should load: format [format] (tflite on Android), preferring the precisions
     * in [preferred] order, else the first of that format.
     */
    fun artefactFor(format: String, preferred: List<String> = listOf("int8", "fp16", "float16", "fp32", "float32")): Artefact {
        val ofFormat = artefacts.filter { it.format == format }
        if (ofFormat.isEmpty()) {
            val have = artefacts.joinToString { "${it.file} (${it.format})" }.ifEmpty { "none" }
            throw IllegalArgumentException("the package has no $format artefact (it has: $have); export one with `featherface export --format $format` and package it again")
        }
        return preferred.firstNotNullOfOrNull { p -> ofFormat.firstOrNull { it.precision == p } } ?: ofFormat.first()
    }

    companion object {
        const val MANIFEST_FORMAT = "featherface-package/1"

        /** Reads a package manifest.json (docs/formats.md). [source] names the file in error messages. */
        fun fromManifest(text: String, source: String = "manifest.json"): DetectorConfig {
            val root = Json.parseObject(text, source)
            try {
                val format = root.string("format")
                if (format != MANIFEST_FORMAT) {
                    throw JsonException("format is '$format'; this app reads '$MANIFEST_FORMAT': package the model with a matching featherface version")
                }
                val input = root.obj("input")
                val resize = input.optString("resize") ?: "letterbox"
                if (resize != "letterbox") throw JsonException("input.resize is '$resize'; only 'letterbox' is supported")
                return DetectorConfig(
                    modelName = root.obj("model").string("name"),
                    input = readInput(input),
                    priors = readPriors(root.obj("priors")),
                    thresholds = readThresholds(root.obj("thresholds")),
                    outputs = root.objects("outputs").map {
                        OutputSpec(it.string("name"), it.ints("shape"), (it.map["softmax"] as? Boolean) ?: false)
                    },
                    artefacts = root.objects("artefacts").map {
                        Artefact(
                            file = it.string("file"),
                            format = it.string("format"),
                            precision = it.optString("precision") ?: "fp32",
                            layout = it.optString("layout"),
                            inputDtype = it.optString("input_dtype") ?: "float32",
                        )
                    },
                )
            } catch (e: JsonException) {
                throw JsonException("$source: ${e.message}")
            } catch (e: IllegalArgumentException) {
                throw JsonException("$source: ${e.message}")
            }
        }

        internal fun readInput(o: JsonObject) = InputSpec(
            width = o.int("width"),
            height = o.int("height"),
            meanBgr = o.floats("mean"),
            channelOrder = o.optString("channel_order") ?: "BGR",
        )

        internal fun readPriors(o: JsonObject) = PriorConfig(
            minSizes = o.intLists("min_sizes"),
            steps = o.ints("steps"),
            variance = o.doubles("variance"),
            clip = o.boolean("clip"),
        )

        internal fun readThresholds(o: JsonObject) = Thresholds(
            score = o.double("score").toFloat(),
            nmsIou = o.double("nms_iou").toFloat(),
            topK = o.int("top_k"),
            keepTopK = o.int("keep_top_k"),
        )
    }
}

/** The three model outputs, by the name the manifest gives them and the size of their last dimension. */
enum class OutputRole(val manifestName: String, val lastDim: Int) {
    LOC("loc", 4),
    CONF("conf", 2),
    LANDMS("landms", 10),
}
