// swift-tools-version:5.9
// FaceDetectorCore: the Foundation-only port of featherface_mobile/processing.py
// (priors, decoding, NMS, letterbox inverse) used by the FeatherFaceDemo app.
import PackageDescription

let package = Package(
    name: "FaceDetectorCore",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "FaceDetectorCore", targets: ["FaceDetectorCore"]),
    ],
    targets: [
        .target(name: "FaceDetectorCore"),
        .testTarget(name: "FaceDetectorCoreTests", dependencies: ["FaceDetectorCore"]),
    ]
)
