package dev.featherface.core

import kotlin.math.max
import kotlin.math.min

/** Intersection over union of two x1, y1, x2, y2 boxes stored at [a] and [b] in [boxes]; no +1 on areas. */
fun iou(boxes: FloatArray, a: Int, b: Int): Float {
    val ax1 = boxes[4 * a]; val ay1 = boxes[4 * a + 1]; val ax2 = boxes[4 * a + 2]; val ay2 = boxes[4 * a + 3]
    val bx1 = boxes[4 * b]; val by1 = boxes[4 * b + 1]; val bx2 = boxes[4 * b + 2]; val by2 = boxes[4 * b + 3]
    val areaA = max(ax2 - ax1, 0f) * max(ay2 - ay1, 0f)
    val areaB = max(bx2 - bx1, 0f) * max(by2 - by1, 0f)
    val w = max(0f, min(ax2, bx2) - max(ax1, bx1))
    val h = max(0f, min(ay2, by2) - max(ay1, by1))
    val inter = w * h
    return inter / max(areaA + areaB - inter, 1e-12f)
}

/**
 * Greedy NMS over boxes already sorted by descending score: take the first remaining box, drop every
 * remaining box whose IoU with it is > [iouThreshold]. Returns the kept positions, in order, at most [limit].
 */
fun nmsSorted(boxes: FloatArray, count: Int, iouThreshold: Float, limit: Int = Int.MAX_VALUE): IntArray {
    val suppressed = BooleanArray(count)
    val keep = ArrayList<Int>()
    for (i in 0 until count) {
        if (suppressed[i]) continue
        keep.add(i)
        if (keep.size >= limit) break
        for (j in i + 1 until count) {
            if (!suppressed[j] && iou(boxes, i, j) > iouThreshold) suppressed[j] = true
        }
    }
    return keep.toIntArray()
}
