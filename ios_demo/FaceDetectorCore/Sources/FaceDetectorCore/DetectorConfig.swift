import Foundation

/// Everything decoding needs: input size and mean, priors, thresholds. Read from the package
/// manifest (one source of truth), or from the model's metadata; `DetectorDefaults` fills only the gaps.
public struct DetectorConfig: Equatable, Sendable {
    public var inputWidth: Int
    public var inputHeight: Int
    public var meanBGR: [Double]
    public var priors: PriorConfig
    public var thresholds: Thresholds
    /// Where the values came from ("manifest", "metadata", "defaults"), for the UI and logs.
    public var source: String

    public init(inputWidth: Int, inputHeight: Int, meanBGR: [Double], priors: PriorConfig,
                thresholds: Thresholds, source: String) {
        self.inputWidth = inputWidth
        self.inputHeight = inputHeight
        self.meanBGR = meanBGR
        self.priors = priors
        self.thresholds = thresholds
        self.source = source
    }

    /// The Python defaults, for a model that ships without a manifest or metadata.
    public static let fallback = DetectorConfig(
        inputWidth: DetectorDefaults.inputSize, inputHeight: DetectorDefaults.inputSize,
        meanBGR: DetectorDefaults.meanBGR, priors: .fallback, thresholds: .fallback, source: "defaults")

    public init(manifest: PackageManifest) {
        self.init(
            inputWidth: manifest.input.width, inputHeight: manifest.input.height, meanBGR: manifest.input.mean,
            priors: manifest.priors ?? .fallback, thresholds: manifest.thresholds ?? .fallback, source: "manifest")
    }

    /// The configuration a golden file was written with.
    public init(golden: GoldenFile) {
        self.init(
            inputWidth: golden.input.width, inputHeight: golden.input.height, meanBGR: golden.input.mean,
            priors: golden.priors, thresholds: golden.thresholds, source: "golden")
    }

    /// Reads a `manifest.json` file.
    public static func load(manifestAt url: URL) throws -> DetectorConfig {
        let manifest = try JSONDecoder().decode(PackageManifest.self, from: Data(contentsOf: url))
        guard manifest.format == PackageManifest.formatName else {
            throw FaceDetectorCoreError.unsupportedFormat(
                "\(url.lastPathComponent) has format \(manifest.format); this app reads \(PackageManifest.formatName)")
        }
        return DetectorConfig(manifest: manifest)
    }

    /// From a model's string metadata (Core ML `creatorDefinedKey`): either a whole manifest under
    /// "manifest", or the exporter's keys ("input_size", "mean", "priors", "thresholds") holding JSON.
    /// Keys that are absent or unreadable keep the defaults.
    public init(metadata: [String: String]) {
        let decoder = JSONDecoder()
        func value<T: Decodable>(_ type: T.Type, _ key: String) -> T? {
            guard let text = metadata[key] else { return nil }
            return try? decoder.decode(T.self, from: Data(text.utf8))
        }
        if let manifest = value(PackageManifest.self, "manifest") {
            self = DetectorConfig(manifest: manifest)
            return
        }
        var config = DetectorConfig.fallback
        var found = false
        if let size = value([Int].self, "input_size"), size.count == 2 {
            config.inputWidth = size[0]
            config.inputHeight = size[1]
            found = true
        }
        if let mean = value([Double].self, "mean"), mean.count == 3 {
            config.meanBGR = mean
            found = true
        }
        if let priors = value(PriorConfig.self, "priors") {
            config.priors = priors
            found = true
        }
        if let thresholds = value(Thresholds.self, "thresholds") {
            config.thresholds = thresholds
            found = true
        }
        config.source = found ? "metadata" : "defaults"
        self = config
    }
}

public enum FaceDetectorCoreError: Error, CustomStringConvertible, Equatable {
    case unsupportedFormat(String)
    case outputSize(String)

    public var description: String {
        switch self {
        case .unsupportedFormat(let message), .outputSize(let message):
            return message
        }
    }
}
