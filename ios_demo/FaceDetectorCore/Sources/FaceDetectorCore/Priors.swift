import Foundation

/// One anchor as (cx, cy, w, h), normalised by the input width / height.
public struct PriorBox: Equatable, Sendable {
    public var cx: Float
    public var cy: Float
    public var w: Float
    public var h: Float

    public init(cx: Float, cy: Float, w: Float, h: Float) {
        self.cx = cx
        self.cy = cy
        self.w = w
        self.h = h
    }
}

/// Priors for a `width` x `height` input: level by level, row-major, sizes innermost
/// (docs/formats.md, step 1). Values are computed in Double and rounded to Float once, like
/// Python, which builds them in float64 and stores float32.
public func priorBoxes(width: Int, height: Int, config: PriorConfig = .fallback) -> [PriorBox] {
    precondition(config.minSizes.count == config.steps.count, "priors: min_sizes and steps need one entry per level")
    var boxes: [PriorBox] = []
    let w = Double(width)
    let h = Double(height)
    for (sizes, step) in zip(config.minSizes, config.steps) {
        let s = Double(step)
        let rows = Int((h / s).rounded(.up))
        let cols = Int((w / s).rounded(.up))
        boxes.reserveCapacity(boxes.count + rows * cols * sizes.count)
        for i in 0..<rows {
            for j in 0..<cols {
                for size in sizes {
                    var box = PriorBox(
                        cx: Float((Double(j) + 0.5) * s / w), cy: Float((Double(i) + 0.5) * s / h),
                        w: Float(Double(size) / w), h: Float(Double(size) / h))
                    if config.clip {
                        box.cx = min(max(box.cx, 0), 1)
                        box.cy = min(max(box.cy, 0), 1)
                        box.w = min(max(box.w, 0), 1)
                        box.h = min(max(box.h, 0), 1)
                    }
                    boxes.append(box)
                }
            }
        }
    }
    return boxes
}
