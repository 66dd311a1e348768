import CoreML
import XCTest
@testable import FeatherFaceDemo

/// The benchmark screen as tests, for `xcodebuild test`: N warm-up + M timed runs on the bundled
/// image. Settings come from the environment (pass them to xcodebuild with the TEST_RUNNER_ prefix):
/// FEATHERFACE_COMPUTE_UNITS (all | cpuAndGPU | cpuOnly | cpuAndNeuralEngine), FEATHERFACE_BENCH_WARMUP,
/// FEATHERFACE_BENCH_RUNS. Skips when no model is bundled.
final class BenchmarkPerformanceTests: XCTestCase {
    private var environment: [String: String] { ProcessInfo.processInfo.environment }
    private var warmup: Int { Int(environment["FEATHERFACE_BENCH_WARMUP"] ?? "") ?? 10 }
    private var runs: Int { max(1, Int(environment["FEATHERFACE_BENCH_RUNS"] ?? "") ?? 50) }
    private var units: ComputeUnitsOption { ComputeUnitsOption(environmentValue: environment["FEATHERFACE_COMPUTE_UNITS"]) ?? .all }

    private func makeDetector() throws -> CoreMLFaceDetector {
        do {
            _ = try ModelLocator.locate()
        } catch {
            throw XCTSkip("\(error)")
        }
        return try CoreMLFaceDetector(computeUnits: units)
    }

    /// Median / p90 / FPS as the benchmark screen reports them, printed and attached to the result.
    func testBenchmarkOnBundledImage() throws {
        let detector = try makeDetector()
        let bundled = Benchmark.bundledImage()
        let report = try Benchmark.run(detector: detector, image: bundled.image, imageName: bundled.name,
                                       warmup: warmup, runs: runs)
        print("[benchmark] \(report.summary)")
        let attachment = XCTAttachment(string: report.summary)
        attachment.name = "benchmark-\(units.rawValue)"
        attachment.lifetime = .keepAlways
        add(attachment)
        XCTAssertEqual(report.timedRuns, runs)
        XCTAssertGreaterThan(report.medianMs, 0)
        XCTAssertLessThanOrEqual(report.medianMs, report.p90Ms)
    }

    /// The same detect() call under XCTest's own measurement (Xcode shows it against a baseline).
    func testDetectLatencyMeasured() throws {
        let detector = try makeDetector()
        let frame = try ImageCanvas.pixelBuffer(from: Benchmark.bundledImage().image)
        for _ in 0..<warmup {
            _ = try detector.detect(pixelBuffer: frame)
        }
        let options = XCTMeasureOptions()
        options.iterationCount = runs
        measure(metrics: [XCTClockMetric()], options: options) {
            do {
                _ = try detector.detect(pixelBuffer: frame)
            } catch {
                XCTFail("detect failed: \(error)")
            }
        }
    }

    /// Every compute-unit option loads the model and runs; FP16 on the GPU / ANE may move a borderline
    /// face across the threshold, so counts may differ by one.
    func testComputeUnitsAgreeOnFaceCount() throws {
        _ = try makeDetector()
        let frame = try ImageCanvas.pixelBuffer(from: Benchmark.bundledImage().image)
        var counts: [ComputeUnitsOption: Int] = [:]
        for option in ComputeUnitsOption.allCases {
            counts[option] = try CoreMLFaceDetector(computeUnits: option).detect(pixelBuffer: frame).faces.count
        }
        let values = Array(counts.values)
        XCTAssertLessThanOrEqual((values.max() ?? 0) - (values.min() ?? 0), 1, "face counts differ across compute units: \(counts)")
    }
}
