package dev.featherface.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.LinearGradient
import android.graphics.Paint
import android.graphics.Shader
import dev.featherface.core.Artefact
import dev.featherface.core.DetectorConfig
import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.RandomAccessFile
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** A packaged model: its manifest (the one source of truth) and the mapped .tflite. */
class PackagedModel(val config: DetectorConfig, val artefact: Artefact, val buffer: MappedByteBuffer)

class ModelMissingException(message: String) : Exception(message)

/**
 * Reads what `./gradlew copyModel -Ppackage=bundle.zip` (or scripts/copy-model.sh) put into
 * assets/model/: manifest.json, the .tflite artefacts and an optional benchmark image. The benchmark
 * can read the same files from a folder on the device instead (`load(File)`), where the host pushes them.
 */
object ModelAssets {
    const val DIR = "model"
    private const val MANIFEST_NAME = "manifest.json"
    private const val MANIFEST = "$DIR/$MANIFEST_NAME"
    private val BENCHMARK_IMAGES = listOf("benchmark.jpg", "benchmark.jpeg", "benchmark.png")

    fun load(context: Context): PackagedModel {
        val manifestText = try {
            context.assets.open(MANIFEST).bufferedReader().use { it.readText() }
        } catch (e: FileNotFoundException) {
            throw ModelMissingException("assets/$MANIFEST not found: run ./gradlew copyModel -Ppackage=bundle.zip and build again")
        }
        val (config, artefact) = readManifest(manifestText, "assets/$MANIFEST")
        val path = "$DIR/${artefact.file}"
        val buffer = try {
            context.assets.openFd(path).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
        } catch (e: FileNotFoundException) {
            throw ModelMissingException("assets/$path is listed in the manifest but missing (or compressed): copy the bundle again with ./gradlew copyModel")
        }
        return PackagedModel(config, artefact, buffer)
    }

    /** The same from [dir] on the device: its manifest.json and the .tflite file the manifest names. */
    fun load(dir: File): PackagedModel {
        val manifest = File(dir, MANIFEST_NAME)
        if (!manifest.isFile) {
            throw ModelMissingException("$manifest not found: push a bundle's manifest.json and .tflite files to $dir (featherface bench --device android does)")
        }
        val (config, artefact) = readManifest(manifest.readText(), manifest.path)
        val file = File(dir, artefact.file)
        if (!file.isFile) throw ModelMissingException("$file is listed in the manifest but missing: push the bundle's .tflite files to $dir")
        val buffer = RandomAccessFile(file, "r").use { it.channel.map(FileChannel.MapMode.READ_ONLY, 0, it.length()) }
        return PackagedModel(config, artefact, buffer)
    }

    private fun readManifest(text: String, source: String): Pair<DetectorConfig, Artefact> {
        val config = DetectorConfig.fromManifest(text, source)
        val artefact = config.artefactFor("tflite")
        if (artefact.layout != null && artefact.layout != "NHWC") {
            throw IllegalArgumentException("${artefact.file} has layout ${artefact.layout}; the app feeds NHWC input (export the tflite artefact again)")
        }
        return config to artefact
    }

    /**
     * The benchmark image: benchmark.{jpg,jpeg,png} from [dir] when given and present, else from
     * assets/model/ when copyModel was given one, else a synthetic 640 x 480 picture (the second value
     * says which, for the report).
     */
    fun benchmarkImage(context: Context, dir: File? = null): Pair<Bitmap, String> {
        val pushed = dir?.let { d -> BENCHMARK_IMAGES.map { File(d, it) }.firstOrNull { it.isFile } }
        if (pushed != null) {
            val bitmap = BitmapFactory.decodeFile(pushed.path)
                ?: throw IllegalArgumentException("$pushed is not an image Android can decode")
            return bitmap.copy(Bitmap.Config.ARGB_8888, false) to "${pushed.name} ${bitmap.width}x${bitmap.height}"
        }
        val names = context.assets.list(DIR).orEmpty()
        val name = BENCHMARK_IMAGES.firstOrNull { it in names }
        if (name != null) {
            val bitmap = context.assets.open("$DIR/$name").use { BitmapFactory.decodeStream(it) }
                ?: throw IllegalArgumentException("assets/$DIR/$name is not an image Android can decode")
            return bitmap.copy(Bitmap.Config.ARGB_8888, false) to "$name ${bitmap.width}x${bitmap.height}"
        }
        val bitmap = Bitmap.createBitmap(640, 480, Bitmap.Config.ARGB_8888)
        Canvas(bitmap).drawPaint(Paint().apply {
            shader = LinearGradient(0f, 0f, 640f, 480f, Color.rgb(200, 160, 140), Color.rgb(40, 60, 90), Shader.TileMode.CLAMP)
        })
        return bitmap to "synthetic 640x480 gradient (no benchmark image in assets/$DIR; copyModel -PbenchmarkImage=face.jpg adds one)"
    }
}
