import Foundation

/// Summary of timed runs, as the benchmark screen and the XCTest performance test report them.
public struct LatencyStats: Equatable, Sendable {
    public var runs: Int
    public var medianMs: Double
    public var p90Ms: Double
    public var meanMs: Double
    public var minMs: Double
    public var maxMs: Double

    /// Frames per second at the median latency.
    public var fps: Double { medianMs > 0 ? 1000.0 / medianMs : 0 }

    /// Median (mean of the two middle values for an even count) and p90 by nearest rank.
    public init?(milliseconds samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let n = sorted.count
        runs = n
        medianMs = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        let rank = Int((0.9 * Double(n)).rounded(.up))
        p90Ms = sorted[min(max(rank, 1), n) - 1]
        meanMs = sorted.reduce(0, +) / Double(n)
        minMs = sorted[0]
        maxMs = sorted[n - 1]
    }
}
