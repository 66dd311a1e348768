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
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** A packaged model inside the APK: its manifest (the one source of truth) and the mapped .tflite. */
class PackagedModel(val config: DetectorConfig, val artefact: Artefact, val buffer: MappedByteBuffer)

class ModelMissingException(message: String) : Exception(message)

/**
 * Reads what `./gradlew copyModel -Ppackage=bundle.zip` (or scripts/copy-model.sh) put into
 * assets/model/: manifest.json, the .tflite artefacts and an optional benchmark image.
 */
object ModelAssets {
    const val DIR = "model"
    private const val MANIFEST = "$DIR/manifest.json"

    fun load(context: Context): PackagedModel {
        val manifestText = try {
            context.assets.open(MANIFEST).bufferedReader().use { it.readText() }
        } catch (e: FileNotFoundException) {
            throw ModelMissingException("assets/$MANIFEST not found: run ./gradlew copyModel -Ppackage=bundle.zip and build again")
        }
        val config = DetectorConfig.fromManifest(manifestText, "assets/$MANIFEST")
        val artefact = config.artefactFor("tflite")
        if (artefact.layout != null && artefact.layout != "NHWC") {
            throw IllegalArgumentException("${artefact.file} has layout ${artefact.layout}; the app feeds NHWC input (export the tflite artefact again)")
        }
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

    /**
     * The benchmark image: assets/model/benchmark.{jpg,jpeg,png} when copyModel was given one, else a
     * synthetic 640 x 480 picture (the second value says which, for the report).
     */
    fun benchmarkImage(context: Context): Pair<Bitmap, String> {
        val names = context.assets.list(DIR).orEmpty()
        val name = listOf("benchmark.jpg", "benchmark.jpeg", "benchmark.png").firstOrNull { it in names }
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
