import Foundation

/// Raw outputs of one image -> faces, exactly as featherface_mobile.processing.postprocess:
/// score filter, stable sort, top_k, decode, scale to input pixels, NMS, keep_top_k, letterbox inverse.
/// Arithmetic is Float32 in the same order as the numpy code, so results match the golden vectors.
public struct FaceDecoder: Sendable {
    public let config: DetectorConfig
    public let priors: [PriorBox]

    public init(config: DetectorConfig) {
        self.config = config
        self.priors = priorBoxes(width: config.inputWidth, height: config.inputHeight, config: config.priors)
    }

    /// `loc` N*4, `conf` N*2 (softmax applied, column 1 = face), `landms` N*10, row-major Float32.
    /// Faces come back in original-image pixels when `letterbox` is given, else in input pixels.
    public func decode(loc: UnsafeBufferPointer<Float>, conf: UnsafeBufferPointer<Float>,
                       landms: UnsafeBufferPointer<Float>, letterbox: Letterbox? = nil) throws -> [Face] {
        let n = priors.count
        guard loc.count == n * 4, conf.count == n * 2, landms.count == n * 10 else {
            throw FaceDetectorCoreError.outputSize(
                "outputs do not match \(n) priors for a \(config.inputWidth)x\(config.inputHeight) input: "
                + "loc \(loc.count) (want \(n * 4)), conf \(conf.count) (want \(n * 2)), landms \(landms.count) (want \(n * 10)); "
                + "check the manifest's input size against the model")
        }
        let threshold = Float(config.thresholds.score)
        var candidates: [(index: Int, score: Float)] = []
        for i in 0..<n {
            let score = conf[2 * i + 1]
            if score > threshold {
                candidates.append((index: i, score: score))
            }
        }
        // Descending score; ties keep ascending prior index (numpy's stable argsort of -score).
        candidates.sort { a, b in a.score != b.score ? a.score > b.score : a.index < b.index }
        if candidates.count > config.thresholds.topK {
            candidates.removeSubrange(config.thresholds.topK...)
        }

        let v0 = Float(config.priors.variance[0])
        let v1 = Float(config.priors.variance[1])
        let width = Float(config.inputWidth)
        let height = Float(config.inputHeight)
        var faces: [Face] = []
        faces.reserveCapacity(candidates.count)
        for (i, score) in candidates {
            let p = priors[i]
            let cx = p.cx + loc[4 * i] * v0 * p.w
            let cy = p.cy + loc[4 * i + 1] * v0 * p.h
            let w = p.w * exp(loc[4 * i + 2] * v1)
            let h = p.h * exp(loc[4 * i + 3] * v1)
            var landmarks = [Float](repeating: 0, count: 10)
            for k in 0..<5 {
                landmarks[2 * k] = (landms[10 * i + 2 * k] * v0 * p.w + p.cx) * width
                landmarks[2 * k + 1] = (landms[10 * i + 2 * k + 1] * v0 * p.h + p.cy) * height
            }
            faces.append(Face(
                x1: (cx - w / 2) * width, y1: (cy - h / 2) * height,
                x2: (cx + w / 2) * width, y2: (cy + h / 2) * height,
                score: score, landmarks: landmarks))
        }

        let kept = nonMaximumSuppression(
            faces, iouThreshold: Float(config.thresholds.nmsIoU), limit: config.thresholds.keepTopK)
        let result = kept.map { faces[$0] }
        guard let letterbox else { return result }
        return result.map { letterbox.toImage($0) }
    }

    /// Array convenience for tests and small callers.
    public func decode(loc: [Float], conf: [Float], landms: [Float], letterbox: Letterbox? = nil) throws -> [Face] {
        try loc.withUnsafeBufferPointer { l in
            try conf.withUnsafeBufferPointer { c in
                try landms.withUnsafeBufferPointer { m in
                    try decode(loc: l, conf: c, landms: m, letterbox: letterbox)
                }
            }
        }
    }
}
