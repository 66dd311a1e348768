package dev.featherface.core

/** One detection: box corners, face score and 5 landmarks (x, y interleaved), in one coordinate frame. */
data class Face(
    val x1: Float,
    val y1: Float,
    val x2: Float,
    val y2: Float,
    val score: Float,
    /** Left eye, right eye, nose, left and right mouth corner: x0, y0, ..., x4, y4. */
    val landmarks: FloatArray,
) {
    init {
        require(landmarks.size == 10) { "a face has 5 landmarks (10 values), got ${landmarks.size}" }
    }

    val width: Float get() = x2 - x1
    val height: Float get() = y2 - y1

    /** The same face with every x mapped by [fx] and every y by [fy] (landmarks included). */
    inline fun mapPoints(fx: (Float) -> Float, fy: (Float) -> Float): Face = Face(
        x1 = fx(x1), y1 = fy(y1), x2 = fx(x2), y2 = fy(y2), score = score,
        landmarks = FloatArray(10) { k -> if (k % 2 == 0) fx(landmarks[k]) else fy(landmarks[k]) },
    )

    override fun equals(other: Any?) = other is Face && x1 == other.x1 && y1 == other.y1 && x2 == other.x2 &&
        y2 == other.y2 && score == other.score && landmarks.contentEquals(other.landmarks)

    override fun hashCode() = ((x1.hashCode() * 31 + y1.hashCode()) * 31 + score.hashCode()) * 31 + landmarks.contentHashCode()
}
