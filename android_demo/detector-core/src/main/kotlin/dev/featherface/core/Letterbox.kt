package dev.featherface.core

import kotlin.math.max
import kotlin.math.min

/**
 * How an image was placed into the model input: resized by (scaleX, scaleY), then offset by
 * (padX, padY) on a mean-coloured canvas. [toImageX] / [toImageY] undo it.
 */
data class Letterbox(
    val scaleX: Double,
    val scaleY: Double,
    val padX: Int,
    val padY: Int,
    val imageWidth: Int,
    val imageHeight: Int,
) {
    /** Size of the resized image inside the input. */
    val resizedWidth: Int get() = Math.rint(imageWidth * scaleX).toInt()
    val resizedHeight: Int get() = Math.rint(imageHeight * scaleY).toInt()

    fun toImageX(x: Float): Float = ((x - padX) / scaleX).toFloat()
    fun toImageY(y: Float): Float = ((y - padY) / scaleY).toFloat()

    /** Input coordinates of an image point (the forward mapping, e.g. for drawing the input frame). */
    fun toInputX(x: Float): Float = (x * scaleX + padX).toFloat()
    fun toInputY(y: Float): Float = (y * scaleY + padY).toFloat()

    companion object {
        /** The identity placement of an image that already has the input size. */
        fun identity(width: Int, height: Int) = Letterbox(1.0, 1.0, 0, 0, width, height)

        /**
         * Placement of an [imageWidth] x [imageHeight] image into an [inputWidth] x [inputHeight] input,
         * as `featherface_mobile.processing.letterbox`: one scale for both axes, sizes rounded half
         * to even (Python's round), centred with the remainder on the right / bottom.
         */
        fun fit(imageWidth: Int, imageHeight: Int, inputWidth: Int, inputHeight: Int = inputWidth): Letterbox {
            require(imageWidth > 0 && imageHeight > 0) { "image size must be positive, got ${imageWidth}x$imageHeight" }
            if (imageWidth == inputWidth && imageHeight == inputHeight) return identity(imageWidth, imageHeight)
            val scale = min(inputWidth.toDouble() / imageWidth, inputHeight.toDouble() / imageHeight)
            val nw = max(1, Math.rint(imageWidth * scale).toInt())
            val nh = max(1, Math.rint(imageHeight * scale).toInt())
            return Letterbox(
                scaleX = nw.toDouble() / imageWidth,
                scaleY = nh.toDouble() / imageHeight,
                padX = (inputWidth - nw) / 2,
                padY = (inputHeight - nh) / 2,
                imageWidth = imageWidth,
                imageHeight = imageHeight,
            )
        }
    }
}
