package dev.featherface.core

import kotlin.math.max
import kotlin.math.min

/**
 * A 2-D affine map x' = m00*x + m01*y + m02, y' = m10*x + m11*y + m12. The app turns it into an
 * android.graphics.Matrix ([toMatrixValues]) so that the drawing code and these tested formulas agree.
 */
data class Affine(
    val m00: Float, val m01: Float, val m02: Float,
    val m10: Float, val m11: Float, val m12: Float,
) {
    fun x(x: Float, y: Float) = m00 * x + m01 * y + m02
    fun y(x: Float, y: Float) = m10 * x + m11 * y + m12

    /** This map followed by [next]. */
    fun then(next: Affine) = Affine(
        next.m00 * m00 + next.m01 * m10, next.m00 * m01 + next.m01 * m11, next.m00 * m02 + next.m01 * m12 + next.m02,
        next.m10 * m00 + next.m11 * m10, next.m10 * m01 + next.m11 * m11, next.m10 * m02 + next.m11 * m12 + next.m12,
    )

    /** Row-major 3x3 values, the layout of android.graphics.Matrix.setValues. */
    fun toMatrixValues() = floatArrayOf(m00, m01, m02, m10, m11, m12, 0f, 0f, 1f)

    companion object {
        val IDENTITY = Affine(1f, 0f, 0f, 0f, 1f, 0f)
        fun scale(sx: Float, sy: Float) = Affine(sx, 0f, 0f, 0f, sy, 0f)
        fun translate(tx: Float, ty: Float) = Affine(1f, 0f, tx, 0f, 1f, ty)

        /**
         * Sensor-frame pixels of a [width] x [height] camera buffer -> the upright image, for CameraX's
         * `rotationDegrees` (the clockwise rotation that makes the buffer upright).
         */
        fun upright(width: Int, height: Int, rotationDegrees: Int): Affine {
            val w = width.toFloat()
            val h = height.toFloat()
            return when (((rotationDegrees % 360) + 360) % 360) {
                0 -> IDENTITY
                90 -> Affine(0f, -1f, h, 1f, 0f, 0f)
                180 -> Affine(-1f, 0f, w, 0f, -1f, h)
                270 -> Affine(0f, 1f, 0f, -1f, 0f, w)
                else -> throw IllegalArgumentException("rotation must be a multiple of 90 degrees, got $rotationDegrees")
            }
        }

        /** Size of the upright image: width and height swap for 90 and 270 degrees. */
        fun uprightSize(width: Int, height: Int, rotationDegrees: Int): Pair<Int, Int> =
            if ((((rotationDegrees % 360) + 360) % 360) % 180 == 0) width to height else height to width

        /** Sensor buffer -> model input: rotate upright, then place with [letterbox]. */
        fun sensorToInput(width: Int, height: Int, rotationDegrees: Int, letterbox: Letterbox): Affine =
            upright(width, height, rotationDegrees)
                .then(scale(letterbox.scaleX.toFloat(), letterbox.scaleY.toFloat()))
                .then(translate(letterbox.padX.toFloat(), letterbox.padY.toFloat()))
    }
}

/**
 * Upright-image pixels -> view pixels for a preview that scales the image to fill ([fillCenter],
 * PreviewView's FILL_CENTER) or fit ([fitCenter]) the view, centred, mirrored horizontally for the
 * front camera (the preview is shown mirrored, so the overlay must be too).
 */
data class ViewTransform(
    val scale: Float,
    val offsetX: Float,
    val offsetY: Float,
    val viewWidth: Float,
    val mirror: Boolean,
) {
    fun x(x: Float): Float {
        val v = x * scale + offsetX
        return if (mirror) viewWidth - v else v
    }

    fun y(y: Float): Float = y * scale + offsetY

    /** [face] in view pixels; box corners stay ordered (x1 < x2) after mirroring. */
    fun apply(face: Face): Face {
        val mapped = face.mapPoints(::x, ::y)
        return if (!mirror) mapped else mapped.copy(x1 = mapped.x2, x2 = mapped.x1)
    }

    companion object {
        fun fillCenter(imageWidth: Int, imageHeight: Int, viewWidth: Int, viewHeight: Int, mirror: Boolean) =
            centred(max(viewWidth.toFloat() / imageWidth, viewHeight.toFloat() / imageHeight), imageWidth, imageHeight, viewWidth, viewHeight, mirror)

        fun fitCenter(imageWidth: Int, imageHeight: Int, viewWidth: Int, viewHeight: Int, mirror: Boolean) =
            centred(min(viewWidth.toFloat() / imageWidth, viewHeight.toFloat() / imageHeight), imageWidth, imageHeight, viewWidth, viewHeight, mirror)

        private fun centred(scale: Float, iw: Int, ih: Int, vw: Int, vh: Int, mirror: Boolean) = ViewTransform(
            scale = scale,
            offsetX = (vw - iw * scale) / 2f,
            offsetY = (vh - ih * scale) / 2f,
            viewWidth = vw.toFloat(),
            mirror = mirror,
        )
    }
}
