import Accelerate
import CoreGraphics
import CoreML
import CoreVideo
import FaceDetectorCore
import Foundation

/// Pixel work before and after Core ML: BGRA buffers, the letterbox into the model input, the
/// BGR-minus-mean NCHW tensor, and Core ML outputs as Float arrays.
enum ImageCanvas {
    enum CanvasError: Error, CustomStringConvertible {
        case pixelBuffer(String)
        case vImage(Int)

        var description: String {
            switch self {
            case .pixelBuffer(let message): return message
            case .vImage(let code): return "vImage failed with error \(code)"
            }
        }
    }

    static func makeBGRAPixelBuffer(width: Int, height: Int) throws -> CVPixelBuffer {
        let attributes: [String: Any] = [
            kCVPixelBufferCGImageCompatibilityKey as String: true,
            kCVPixelBufferCGBitmapContextCompatibilityKey as String: true,
            kCVPixelBufferIOSurfacePropertiesKey as String: [String: Any](),
        ]
        var buffer: CVPixelBuffer?
        let status = CVPixelBufferCreate(kCFAllocatorDefault, width, height, kCVPixelFormatType_32BGRA,
                                         attributes as CFDictionary, &buffer)
        guard status == kCVReturnSuccess, let buffer else {
            throw CanvasError.pixelBuffer("CVPixelBufferCreate \(width)x\(height) BGRA failed (\(status))")
        }
        return buffer
    }

    /// A still image as a BGRA pixel buffer of its own size (the form camera frames arrive in).
    static func pixelBuffer(from image: CGImage) throws -> CVPixelBuffer {
        let buffer = try makeBGRAPixelBuffer(width: image.width, height: image.height)
        CVPixelBufferLockBaseAddress(buffer, [])
        defer { CVPixelBufferUnlockBaseAddress(buffer, []) }
        let bitmapInfo = CGImageAlphaInfo.noneSkipFirst.rawValue | CGBitmapInfo.byteOrder32Little.rawValue
        guard let context = CGContext(
            data: CVPixelBufferGetBaseAddress(buffer), width: image.width, height: image.height, bitsPerComponent: 8,
            bytesPerRow: CVPixelBufferGetBytesPerRow(buffer), space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: bitmapInfo)
        else {
            throw CanvasError.pixelBuffer("cannot draw a \(image.width)x\(image.height) image into a BGRA buffer")
        }
        context.draw(image, in: CGRect(x: 0, y: 0, width: image.width, height: image.height))
        return buffer
    }

    /// Resizes `source` (BGRA) into `canvas` (BGRA, square) at `placement`, the rest filled with the mean
    /// colour (zero after normalisation), as featherface_mobile.processing.letterbox does.
    /// vImage resamples with a Lanczos kernel where Python uses bilinear: pixel values differ slightly.
    static func letterbox(_ source: CVPixelBuffer, into canvas: CVPixelBuffer, placement: Letterbox, meanBGR: [Double]) throws {
        CVPixelBufferLockBaseAddress(source, .readOnly)
        CVPixelBufferLockBaseAddress(canvas, [])
        defer {
            CVPixelBufferUnlockBaseAddress(canvas, [])
            CVPixelBufferUnlockBaseAddress(source, .readOnly)
        }
        guard let src = CVPixelBufferGetBaseAddress(source), let dst = CVPixelBufferGetBaseAddress(canvas) else {
            throw CanvasError.pixelBuffer("pixel buffer has no base address (not BGRA?)")
        }
        let canvasWidth = CVPixelBufferGetWidth(canvas)
        let canvasHeight = CVPixelBufferGetHeight(canvas)
        let canvasRowBytes = CVPixelBufferGetBytesPerRow(canvas)

        var fill: UInt32 = 0
        withUnsafeMutableBytes(of: &fill) { bytes in
            bytes[0] = UInt8(clamping: Int(meanBGR[0].rounded()))
            bytes[1] = UInt8(clamping: Int(meanBGR[1].rounded()))
            bytes[2] = UInt8(clamping: Int(meanBGR[2].rounded()))
            bytes[3] = 255
        }
        for row in 0..<canvasHeight {
            memset_pattern4(dst.advanced(by: row * canvasRowBytes), &fill, canvasWidth * 4)
        }

        let resizedWidth = min(placement.resizedWidth, canvasWidth - placement.padX)
        let resizedHeight = min(placement.resizedHeight, canvasHeight - placement.padY)
        var srcBuffer = vImage_Buffer(
            data: src, height: vImagePixelCount(CVPixelBufferGetHeight(source)),
            width: vImagePixelCount(CVPixelBufferGetWidth(source)), rowBytes: CVPixelBufferGetBytesPerRow(source))
        var dstBuffer = vImage_Buffer(
            data: dst.advanced(by: placement.padY * canvasRowBytes + placement.padX * 4),
            height: vImagePixelCount(resizedHeight), width: vImagePixelCount(resizedWidth), rowBytes: canvasRowBytes)
        let error = vImageScale_ARGB8888(&srcBuffer, &dstBuffer, nil, vImage_Flags(kvImageNoFlags))
        guard error == kvImageNoError else { throw CanvasError.vImage(error) }
    }

    /// BGRA canvas -> `tensor` (1x3xHxW Float32): BGR planes, pixel - mean.
    static func fillNCHW(_ tensor: MLMultiArray, from canvas: CVPixelBuffer, meanBGR: [Double]) throws {
        guard tensor.dataType == .float32, tensor.shape.count == 4 else {
            throw CanvasError.pixelBuffer("model input must be a Float32 1x3xHxW array, got \(tensor.shape) \(tensor.dataType.rawValue)")
        }
        CVPixelBufferLockBaseAddress(canvas, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(canvas, .readOnly) }
        guard let base = CVPixelBufferGetBaseAddress(canvas) else {
            throw CanvasError.pixelBuffer("canvas has no base address")
        }
        let width = CVPixelBufferGetWidth(canvas)
        let height = CVPixelBufferGetHeight(canvas)
        let rowBytes = CVPixelBufferGetBytesPerRow(canvas)
        let strides = tensor.strides.map { $0.intValue }
        let channelStride = strides[1]
        let rowStride = strides[2]
        let columnStride = strides[3]
        let out = tensor.dataPointer.bindMemory(to: Float.self, capacity: tensor.count)
        let meanB = Float(meanBGR[0])
        let meanG = Float(meanBGR[1])
        let meanR = Float(meanBGR[2])
        for y in 0..<height {
            let row = base.advanced(by: y * rowBytes).assumingMemoryBound(to: UInt8.self)
            for x in 0..<width {
                let offset = y * rowStride + x * columnStride
                out[offset] = Float(row[4 * x]) - meanB
                out[offset + channelStride] = Float(row[4 * x + 1]) - meanG
                out[offset + 2 * channelStride] = Float(row[4 * x + 2]) - meanR
            }
        }
    }

    /// A Core ML output as a row-major Float array (Float32 and Float16 outputs; any strides).
    static func floats(_ array: MLMultiArray) -> [Float] {
        let count = array.count
        let shape = array.shape.map { $0.intValue }
        let strides = array.strides.map { $0.intValue }
        var contiguous = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) {
            contiguous[axis] = contiguous[axis + 1] * shape[axis + 1]
        }
        var isContiguous = true
        for axis in 0..<shape.count where shape[axis] > 1 && strides[axis] != contiguous[axis] {
            isContiguous = false
        }
        if isContiguous && array.dataType == .float32 {
            let pointer = array.dataPointer.bindMemory(to: Float.self, capacity: count)
            return Array(UnsafeBufferPointer(start: pointer, count: count))
        }
        if isContiguous && array.dataType == .float16 {
            var result = [Float](repeating: 0, count: count)
            var src = vImage_Buffer(data: array.dataPointer, height: 1, width: vImagePixelCount(count), rowBytes: count * 2)
            result.withUnsafeMutableBytes { raw in
                var dst = vImage_Buffer(data: raw.baseAddress, height: 1, width: vImagePixelCount(count), rowBytes: count * 4)
                _ = vImageConvert_Planar16FtoPlanarF(&src, &dst, vImage_Flags(kvImageNoFlags))
            }
            return result
        }
        // Strided or Double: walk the logical indices (slow, but correct for any layout).
        var result = [Float]()
        result.reserveCapacity(count)
        var index = [Int](repeating: 0, count: shape.count)
        for _ in 0..<count {
            result.append(array[index.map { NSNumber(value: $0) }].floatValue)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }
}
