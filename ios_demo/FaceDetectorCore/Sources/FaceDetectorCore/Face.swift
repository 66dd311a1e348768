import Foundation

/// One detection: box corners (x1, y1, x2, y2), face score and 5 landmarks as x, y pairs
/// (left eye, right eye, nose, left mouth corner, right mouth corner), in the pixels of whatever
/// image the decoder was told about (model input, or the original image after the letterbox inverse).
public struct Face: Equatable, Sendable {
    public var x1: Float
    public var y1: Float
    public var x2: Float
    public var y2: Float
    public var score: Float
    /// 10 values: x0, y0, x1, y1, ..., x4, y4.
    public var landmarks: [Float]

    public init(x1: Float, y1: Float, x2: Float, y2: Float, score: Float, landmarks: [Float]) {
        self.x1 = x1
        self.y1 = y1
        self.x2 = x2
        self.y2 = y2
        self.score = score
        self.landmarks = landmarks
    }

    public var width: Float { x2 - x1 }
    public var height: Float { y2 - y1 }
}
