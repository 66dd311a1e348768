import CoreML
import FaceDetectorCore
import Foundation

/// Finds the packaged Core ML model and its manifest: first in the app's Documents folder (dropped in
/// with the Files app or Finder), then in the app bundle (added to the Xcode project before building).
enum ModelLocator {
    struct Located {
        /// A compiled model (.mlmodelc), ready for MLModel(contentsOf:configuration:).
        let compiledModelURL: URL
        let manifestURL: URL?
        let displayName: String
    }

    enum LocatorError: Error, CustomStringConvertible {
        case noModel(searched: [String])

        var description: String {
            switch self {
            case .noModel(let searched):
                return "No Core ML model found (looked in \(searched.joined(separator: ", "))). "
                    + "Add the package's .mlpackage and manifest.json to ios_demo/FeatherFaceDemo/Model/ and rebuild, "
                    + "or copy them into the app's Documents folder."
            }
        }
    }

    static var documentsDirectory: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }

    static func locate(bundle: Bundle = .main) throws -> Located {
        let documents = documentsDirectory
        let files = (try? FileManager.default.contentsOfDirectory(at: documents, includingPropertiesForKeys: nil)) ?? []
        let documentManifest = files.first { $0.lastPathComponent == "manifest.json" }
        for ext in ["mlmodelc", "mlpackage", "mlmodel"] {
            if let url = files.filter({ $0.pathExtension == ext }).sorted(by: { $0.lastPathComponent < $1.lastPathComponent }).first {
                var compiled = url
                if ext != "mlmodelc" {
                    compiled = try MLModel.compileModel(at: url)
                }
                return Located(compiledModelURL: compiled, manifestURL: documentManifest, displayName: url.lastPathComponent)
            }
        }
        // Xcode compiles a bundled .mlpackage into <name>.mlmodelc at build time.
        if let url = bundle.urls(forResourcesWithExtension: "mlmodelc", subdirectory: nil)?
            .sorted(by: { $0.lastPathComponent < $1.lastPathComponent }).first {
            return Located(compiledModelURL: url, manifestURL: bundle.url(forResource: "manifest", withExtension: "json"),
                           displayName: url.deletingPathExtension().lastPathComponent)
        }
        throw LocatorError.noModel(searched: [documents.path, bundle.bundlePath])
    }

    /// Decoding settings: manifest.json if present, else the model's metadata, else the Python defaults.
    static func detectorConfig(manifestURL: URL?, model: MLModel) throws -> DetectorConfig {
        if let manifestURL {
            return try DetectorConfig.load(manifestAt: manifestURL)
        }
        let metadata = model.modelDescription.metadata[MLModelMetadataKey.creatorDefinedKey] as? [String: String] ?? [:]
        return DetectorConfig(metadata: metadata)
    }
}
