import Foundation

/// Intersection over union of two (x1, y1, x2, y2) boxes, areas without +1 (docs/formats.md, step 5).
@inline(__always)
public func intersectionOverUnion(_ a: Face, _ b: Face) -> Float {
    let areaA = max(a.x2 - a.x1, 0) * max(a.y2 - a.y1, 0)
    let areaB = max(b.x2 - b.x1, 0) * max(b.y2 - b.y1, 0)
    let w = max(Float(0), min(a.x2, b.x2) - max(a.x1, b.x1))
    let h = max(Float(0), min(a.y2, b.y2) - max(a.y1, b.y1))
    let inter = w * h
    // Same guard as processing.nms: two empty boxes give IoU 0, not NaN.
    return inter / max(areaA + areaB - inter, 1e-12)
}

/// Greedy NMS over `faces` already sorted best first: keep the first remaining face, drop every
/// remaining face whose IoU with it is > `iouThreshold`; at most `limit` faces. Returns kept indices.
public func nonMaximumSuppression(_ faces: [Face], iouThreshold: Float, limit: Int) -> [Int] {
    var kept: [Int] = []
    var suppressed = [Bool](repeating: false, count: faces.count)
    for i in faces.indices where !suppressed[i] {
        if kept.count >= limit { break }
        kept.append(i)
        var j = i + 1
        while j < faces.count {
            if !suppressed[j] && intersectionOverUnion(faces[i], faces[j]) > iouThreshold {
                suppressed[j] = true
            }
            j += 1
        }
    }
    return kept
}
