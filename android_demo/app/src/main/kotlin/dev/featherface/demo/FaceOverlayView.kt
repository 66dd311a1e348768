package dev.featherface.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.util.AttributeSet
import android.view.View
import dev.featherface.core.Face
import dev.featherface.core.ViewTransform
import java.util.Locale

/**
 * Boxes, scores and the 5 landmarks over a PreviewView in FILL_CENTER mode. Faces arrive in
 * upright-image pixels; [ViewTransform] scales them like the preview and mirrors them for the
 * front camera, whose preview is shown mirrored.
 */
class FaceOverlayView @JvmOverloads constructor(context: Context, attrs: AttributeSet? = null) : View(context, attrs) {
    private var faces: List<Face> = emptyList()
    private var imageWidth = 0
    private var imageHeight = 0
    private var mirror = false

    private val density = resources.displayMetrics.density
    private val boxPaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        style = Paint.Style.STROKE
        strokeWidth = 2.5f * density
        color = Color.rgb(0, 230, 118)
    }
    private val textPaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE
        textSize = 13f * density
        setShadowLayer(2f * density, 0f, 0f, Color.BLACK)
    }

    // Left eye, right eye, nose, left and right mouth corner.
    private val landmarkPaints = intArrayOf(
        Color.rgb(255, 82, 82), Color.rgb(68, 138, 255), Color.rgb(255, 214, 0), Color.rgb(224, 64, 251), Color.rgb(0, 229, 255),
    ).map { c -> Paint(Paint.ANTI_ALIAS_FLAG).apply { color = c; style = Paint.Style.FILL } }

    /** Shows [faces] detected in an upright [imageWidth] x [imageHeight] frame. Call on the main thread. */
    fun show(faces: List<Face>, imageWidth: Int, imageHeight: Int, mirror: Boolean) {
        this.faces = faces
        this.imageWidth = imageWidth
        this.imageHeight = imageHeight
        this.mirror = mirror
        invalidate()
    }

    fun clear() = show(emptyList(), 0, 0, false)

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        if (imageWidth == 0 || imageHeight == 0 || width == 0) return
        val transform = ViewTransform.fillCenter(imageWidth, imageHeight, width, height, mirror)
        val radius = 3f * density
        for (face in faces) {
            val v = transform.apply(face)
            canvas.drawRect(v.x1, v.y1, v.x2, v.y2, boxPaint)
            for (k in 0 until 5) canvas.drawCircle(v.landmarks[2 * k], v.landmarks[2 * k + 1], radius, landmarkPaints[k])
            canvas.drawText(String.format(Locale.ROOT, "%.2f", face.score), v.x1, v.y1 - 4 * density, textPaint)
        }
    }
}
