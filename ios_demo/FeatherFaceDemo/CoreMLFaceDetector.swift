import CoreML
import CoreVideo
import FaceDetectorCore
import Foundation

/// Milliseconds spent in each stage of one detection.
struct StageTimings {
    var preprocessMs: Double
    var inferenceMs: Double
    var postprocessMs: Double
    var totalMs: Double { preprocessMs + inferenceMs + postprocessMs }
}

struct DetectionResult {
    /// Faces in the pixels of the frame that was passed in.
    let faces: [Face]
    let frameWidth: Int
    let frameHeight: Int
    let timings: StageTimings
}

/// The packaged Core ML model plus FaceDetectorCore: frame -> letterbox -> Core ML -> decoded faces.
/// Not thread-safe: call `detect` from one queue at a time (it reuses its input buffers).
final class CoreMLFaceDetector {
    enum DetectorError: Error, CustomStringConvertible {
        case input(String)
        case output(String)

        var description: String {
            switch self {
            case .input(let message), .output(let message): return message
            }
        }
    }

    static let outputNames = (loc: "loc", conf: "conf", landms: "landms")

    let model: MLModel
    let config: DetectorConfig
    let decoder: FaceDecoder
    let computeUnits: ComputeUnitsOption
    let modelName: String
    let inputName: String
    let inputIsImage: Bool
    private let canvas: CVPixelBuffer
    private let tensor: MLMultiArray?

    /// Loads the model found by ModelLocator with the chosen compute units.
    convenience init(computeUnits: ComputeUnitsOption, bundle: Bundle = .main) throws {
        let located = try ModelLocator.locate(bundle: bundle)
        try self.init(located: located, computeUnits: computeUnits)
    }

    init(located: ModelLocator.Located, computeUnits: ComputeUnitsOption) throws {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits.mlComputeUnits
        let model = try MLModel(contentsOf: located.compiledModelURL, configuration: configuration)
        var config = try ModelLocator.detectorConfig(manifestURL: located.manifestURL, model: model)

        let inputs = model.modelDescription.inputDescriptionsByName
        guard let name = inputs["input"] != nil ? "input" : inputs.keys.sorted().first, let input = inputs[name] else {
            throw DetectorError.input("the model has no inputs")
        }
        let width: Int
        let height: Int
        let isImage: Bool
        switch input.type {
        case .image:
            guard let constraint = input.imageConstraint else { throw DetectorError.input("image input \(name) has no size") }
            width = constraint.pixelsWide
            height = constraint.pixelsHigh
            isImage = true
        case .multiArray:
            let shape = input.multiArrayConstraint?.shape.map { $0.intValue } ?? []
            guard shape.count == 4, shape[0] == 1, shape[1] == 3 else {
                throw DetectorError.input("input \(name) has shape \(shape); expected 1x3xHxW (NCHW, BGR)")
            }
            height = shape[2]
            width = shape[3]
            isImage = false
        default:
            throw DetectorError.input("input \(name) is neither an image nor a multi-array")
        }
        guard width == height else {
            throw DetectorError.input("input \(name) is \(width)x\(height); the letterbox needs a square input")
        }
        // The model's own input shape wins over a manifest written for another size.
        config.inputWidth = width
        config.inputHeight = height

        let outputs = Set(model.modelDescription.outputDescriptionsByName.keys)
        let names = CoreMLFaceDetector.outputNames
        let missing = [names.loc, names.conf, names.landms].filter { !outputs.contains($0) }
        guard missing.isEmpty else {
            throw DetectorError.output("model outputs \(outputs.sorted()) lack \(missing); export with outputs named loc, conf, landms")
        }

        self.model = model
        self.config = config
        self.decoder = FaceDecoder(config: config)
        self.computeUnits = computeUnits
        self.modelName = located.displayName
        self.inputName = name
        self.inputIsImage = isImage
        self.canvas = try ImageCanvas.makeBGRAPixelBuffer(width: width, height: height)
        if isImage {
            self.tensor = nil
        } else {
            self.tensor = try MLMultiArray(shape: [1, 3, NSNumber(value: height), NSNumber(value: width)], dataType: .float32)
        }
    }

    var inputSize: Int { config.inputWidth }

    /// Detects faces in an upright BGRA frame; faces come back in that frame's pixels.
    func detect(pixelBuffer: CVPixelBuffer) throws -> DetectionResult {
        let start = DispatchTime.now().uptimeNanoseconds
        let frameWidth = CVPixelBufferGetWidth(pixelBuffer)
        let frameHeight = CVPixelBufferGetHeight(pixelBuffer)
        let placement = Letterbox.fitting(width: frameWidth, height: frameHeight, into: inputSize)
        try ImageCanvas.letterbox(pixelBuffer, into: canvas, placement: placement, meanBGR: config.meanBGR)
        let value: MLFeatureValue
        if let tensor = tensor {
            try ImageCanvas.fillNCHW(tensor, from: canvas, meanBGR: config.meanBGR)
            value = MLFeatureValue(multiArray: tensor)
        } else {
            value = MLFeatureValue(pixelBuffer: canvas)  // ImageType input: the mean is baked into the model
        }
        let features = try MLDictionaryFeatureProvider(dictionary: [inputName: value])
        let preprocessed = DispatchTime.now().uptimeNanoseconds

        let output = try model.prediction(from: features)
        let inferred = DispatchTime.now().uptimeNanoseconds

        let names = CoreMLFaceDetector.outputNames
        guard let loc = output.featureValue(for: names.loc)?.multiArrayValue,
              let conf = output.featureValue(for: names.conf)?.multiArrayValue,
              let landms = output.featureValue(for: names.landms)?.multiArrayValue else {
            throw DetectorError.output("prediction lacks loc/conf/landms (got \(output.featureNames.sorted()))")
        }
        let faces = try decoder.decode(
            loc: ImageCanvas.floats(loc), conf: ImageCanvas.floats(conf), landms: ImageCanvas.floats(landms),
            letterbox: placement)
        let done = DispatchTime.now().uptimeNanoseconds

        func ms(_ a: UInt64, _ b: UInt64) -> Double { Double(b - a) / 1_000_000 }
        return DetectionResult(
            faces: faces, frameWidth: frameWidth, frameHeight: frameHeight,
            timings: StageTimings(preprocessMs: ms(start, preprocessed), inferenceMs: ms(preprocessed, inferred),
                                  postprocessMs: ms(inferred, done)))
    }
}
