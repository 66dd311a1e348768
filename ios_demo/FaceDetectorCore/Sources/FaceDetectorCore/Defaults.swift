// Fallback configuration, used only where a package manifest (or the model's metadata) says nothing.
// These literals must equal the Python configuration: tests/test_ios_core.py reads them from this
// file and compares them with PriorConfig(), DetectorConfig() and Thresholds().

/// The Python defaults (`featherface_mobile.models.registry` and `featherface_mobile.processing`).
public enum DetectorDefaults {
    public static let minSizes: [[Int]] = [[16, 32], [64, 128], [256, 512]]
    public static let steps: [Int] = [8, 16, 32]
    public static let variance: [Double] = [0.1, 0.2]
    public static let clip: Bool = false
    public static let meanBGR: [Double] = [104.0, 117.0, 123.0]
    public static let scoreThreshold: Double = 0.5
    public static let nmsIoU: Double = 0.4
    public static let topK: Int = 5000
    public static let keepTopK: Int = 750
    public static let inputSize: Int = 640
}
