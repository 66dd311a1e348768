import Foundation

/// How an image was placed into the square model input: resized by (scaleX, scaleY), then offset
/// by (padX, padY) on a canvas of the mean colour. Also the `letterbox` object of golden files.
public struct Letterbox: Codable, Equatable, Sendable {
    public var scaleX: Double
    public var scaleY: Double
    public var padX: Int
    public var padY: Int
    public var imageWidth: Int
    public var imageHeight: Int

    public init(scaleX: Double, scaleY: Double, padX: Int, padY: Int, imageWidth: Int, imageHeight: Int) {
        self.scaleX = scaleX
        self.scaleY = scaleY
        self.padX = padX
        self.padY = padY
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
    }

    enum CodingKeys: String, CodingKey {
        case scaleX = "scale_x"
        case scaleY = "scale_y"
        case padX = "pad_x"
        case padY = "pad_y"
        case imageWidth = "image_width"
        case imageHeight = "image_height"
    }

    /// Placement of a `width` x `height` image into a `size` x `size` input (docs/formats.md, Letterbox).
    /// Python's round() rounds half to even, hence `.toNearestOrEven`.
    public static func fitting(width: Int, height: Int, into size: Int) -> Letterbox {
        precondition(width > 0 && height > 0 && size > 0, "letterbox needs positive sizes")
        if width == size && height == size {
            return Letterbox(scaleX: 1, scaleY: 1, padX: 0, padY: 0, imageWidth: width, imageHeight: height)
        }
        let scale = min(Double(size) / Double(width), Double(size) / Double(height))
        let resizedWidth = max(1, Int((Double(width) * scale).rounded(.toNearestOrEven)))
        let resizedHeight = max(1, Int((Double(height) * scale).rounded(.toNearestOrEven)))
        return Letterbox(
            scaleX: Double(resizedWidth) / Double(width), scaleY: Double(resizedHeight) / Double(height),
            padX: (size - resizedWidth) / 2, padY: (size - resizedHeight) / 2,
            imageWidth: width, imageHeight: height)
    }

    /// Size of the resized image inside the canvas, in input pixels.
    public var resizedWidth: Int { Int((Double(imageWidth) * scaleX).rounded()) }
    public var resizedHeight: Int { Int((Double(imageHeight) * scaleY).rounded()) }

    /// Input-pixel x back to original-image x (Float32 arithmetic, as in processing.Letterbox.to_image).
    public func imageX(_ x: Float) -> Float { (x - Float(padX)) / Float(scaleX) }

    /// Input-pixel y back to original-image y.
    public func imageY(_ y: Float) -> Float { (y - Float(padY)) / Float(scaleY) }

    /// A face in input pixels mapped back to original-image pixels (box corners and landmarks).
    public func toImage(_ face: Face) -> Face {
        var landmarks = face.landmarks
        for p in 0..<landmarks.count / 2 {
            landmarks[2 * p] = imageX(landmarks[2 * p])
            landmarks[2 * p + 1] = imageY(landmarks[2 * p + 1])
        }
        return Face(
            x1: imageX(face.x1), y1: imageY(face.y1), x2: imageX(face.x2), y2: imageY(face.y2),
            score: face.score, landmarks: landmarks)
    }
}
