import Foundation

// Codable mirrors of the JSON contract in docs/formats.md. Property names are Swift style; the JSON
// key of every property is spelled out in CodingKeys so tests/test_ios_core.py can check them
// against files written by the Python side.

/// `priors` object of the manifest and of golden files.
public struct PriorConfig: Codable, Equatable, Sendable {
    public var minSizes: [[Int]]
    public var steps: [Int]
    public var variance: [Double]
    public var clip: Bool

    public init(minSizes: [[Int]], steps: [Int], variance: [Double], clip: Bool) {
        self.minSizes = minSizes
        self.steps = steps
        self.variance = variance
        self.clip = clip
    }

    public static let fallback = PriorConfig(
        minSizes: DetectorDefaults.minSizes, steps: DetectorDefaults.steps,
        variance: DetectorDefaults.variance, clip: DetectorDefaults.clip)

    enum CodingKeys: String, CodingKey {
        case minSizes = "min_sizes"
        case steps
        case variance
        case clip
    }
}

/// `thresholds` object of the manifest and of golden files.
public struct Thresholds: Codable, Equatable, Sendable {
    public var score: Double
    public var nmsIoU: Double
    public var topK: Int
    public var keepTopK: Int

    public init(score: Double, nmsIoU: Double, topK: Int, keepTopK: Int) {
        self.score = score
        self.nmsIoU = nmsIoU
        self.topK = topK
        self.keepTopK = keepTopK
    }

    public static let fallback = Thresholds(
        score: DetectorDefaults.scoreThreshold, nmsIoU: DetectorDefaults.nmsIoU,
        topK: DetectorDefaults.topK, keepTopK: DetectorDefaults.keepTopK)

    enum CodingKeys: String, CodingKey {
        case score
        case nmsIoU = "nms_iou"
        case topK = "top_k"
        case keepTopK = "keep_top_k"
    }
}

// MARK: - Package manifest (`manifest.json`, format "featherface-package/1")

public struct PackageManifest: Codable, Equatable, Sendable {
    public static let formatName = "featherface-package/1"

    public var format: String
    public var model: ModelInfo
    public var input: ManifestInput
    /// Absent or null fields fall back to `PriorConfig.fallback` / `Thresholds.fallback`.
    public var priors: PriorConfig?
    public var thresholds: Thresholds?
    public var outputs: [OutputInfo]
    public var artefacts: [Artefact]
    /// Path of golden/index.json inside the package zip (null when no golden vectors were written).
    public var golden: String?

    enum CodingKeys: String, CodingKey {
        case format, model, input, priors, thresholds, outputs, artefacts, golden
    }

    public struct ModelInfo: Codable, Equatable, Sendable {
        public var name: String
        public var version: String
        public var parameters: Int?

        enum CodingKeys: String, CodingKey {
            case name, version, parameters
        }
    }

    public struct ManifestInput: Codable, Equatable, Sendable {
        public var width: Int
        public var height: Int
        public var channelOrder: String
        public var mean: [Double]
        public var resize: String

        enum CodingKeys: String, CodingKey {
            case width, height
            case channelOrder = "channel_order"
            case mean, resize
        }
    }

    /// One model output, found by `name`; `softmax` is true for `conf`.
    public struct OutputInfo: Codable, Equatable, Sendable {
        public var name: String
        public var shape: [Int]?
        public var softmax: Bool?

        enum CodingKeys: String, CodingKey {
            case name, shape, softmax
        }
    }

    public struct Artefact: Codable, Equatable, Sendable {
        public var file: String
        public var format: String
        public var precision: String
        public var inputDtype: String?
        public var bytes: Int?
        public var sha256: String?

        enum CodingKeys: String, CodingKey {
            case file, format, precision
            case inputDtype = "input_dtype"
            case bytes, sha256
        }
    }

    /// The first artefact of `format` ("coreml" for iOS, "tflite" for Android).
    public func artefact(format wanted: String) -> Artefact? {
        artefacts.first { $0.format == wanted }
    }
}

// MARK: - Golden vectors (`golden/<image stem>.json`, format "featherface-golden/1")

public struct GoldenIndex: Codable, Equatable, Sendable {
    public static let formatName = "featherface-golden-index/1"

    public var format: String
    public var files: [String]

    enum CodingKeys: String, CodingKey {
        case format, files
    }
}

public struct GoldenFile: Codable, Equatable, Sendable {
    public static let formatName = "featherface-golden/1"

    public var format: String
    public var model: String
    public var image: String
    public var input: GoldenInput
    public var letterbox: Letterbox
    public var priors: PriorConfig
    public var thresholds: Thresholds
    public var numPriors: Int
    public var raw: RawOutputs
    public var faces: [GoldenFace]

    enum CodingKeys: String, CodingKey {
        case format, model, image, input, letterbox, priors, thresholds
        case numPriors = "num_priors"
        case raw, faces
    }
}

public struct GoldenInput: Codable, Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var layout: String
    public var channelOrder: String
    public var mean: [Double]

    enum CodingKeys: String, CodingKey {
        case width, height, layout
        case channelOrder = "channel_order"
        case mean
    }
}

/// Raw model outputs of one image, row-major: loc N*4, conf N*2 (softmax applied), landms N*10.
public struct RawOutputs: Codable, Equatable, Sendable {
    public var loc: [Float]
    public var conf: [Float]
    public var landms: [Float]

    enum CodingKeys: String, CodingKey {
        case loc, conf, landms
    }
}

/// One expected face, in original-image pixels.
public struct GoldenFace: Codable, Equatable, Sendable {
    public var box: [Double]
    public var score: Double
    public var landmarks: [Double]

    enum CodingKeys: String, CodingKey {
        case box, score, landmarks
    }
}
