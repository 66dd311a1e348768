import SwiftUI

/// N warm-up + M timed runs on the bundled image, with the chosen compute units.
struct BenchmarkView: View {
    @StateObject private var model = BenchmarkModel()

    var body: some View {
        NavigationView {
            Form {
                Section("Settings") {
                    Stepper("Warm-up runs: \(model.warmup)", value: $model.warmup, in: 0...100, step: 5)
                    Stepper("Timed runs: \(model.runs)", value: $model.runs, in: 10...1000, step: 10)
                    Picker("Compute units", selection: $model.computeUnits) {
                        ForEach(ComputeUnitsOption.allCases) { option in
                            Text(option.label).tag(option)
                        }
                    }
                    Text("Image: \(model.imageName)")
                        .font(.footnote)
                        .foregroundColor(.secondary)
                }
                Section {
                    Button(model.isRunning ? "Running… \(model.completed)/\(model.runs)" : "Run benchmark") {
                        model.run()
                    }
                    .disabled(model.isRunning)
                }
                if let report = model.report {
                    Section("Result") {
                        row("Median", String(format: "%.2f ms", report.medianMs))
                        row("p90", String(format: "%.2f ms", report.p90Ms))
                        row("FPS (median)", String(format: "%.1f", report.fps))
                        row("Pre / infer / post", String(format: "%.2f / %.2f / %.2f ms", report.preprocessMedianMs,
                                                          report.inferenceMedianMs, report.postprocessMedianMs))
                        row("Compute units", report.computeUnits.label)
                        row("Model input", "\(report.inputSize) px")
                        row("Faces found", "\(report.faces)")
                        Text(report.summary)
                            .font(.caption.monospaced())
                            .textSelection(.enabled)
                    }
                }
                if let error = model.error {
                    Section("Error") {
                        Text(error).foregroundColor(.red)
                    }
                }
            }
            .navigationTitle("Benchmark")
        }
    }

    private func row(_ title: String, _ value: String) -> some View {
        HStack {
            Text(title)
            Spacer()
            Text(value).monospacedDigit()
        }
    }
}

final class BenchmarkModel: ObservableObject {
    @Published var warmup = 10
    @Published var runs = 50
    @Published var computeUnits: ComputeUnitsOption = .all
    @Published private(set) var isRunning = false
    @Published private(set) var completed = 0
    @Published private(set) var report: BenchmarkReport?
    @Published private(set) var error: String?
    let imageName: String
    private let image: CGImage

    init() {
        let bundled = Benchmark.bundledImage()
        imageName = bundled.name
        image = bundled.image
    }

    func run() {
        isRunning = true
        completed = 0
        error = nil
        let warmup = self.warmup
        let runs = self.runs
        let units = self.computeUnits
        let image = self.image
        let imageName = self.imageName
        DispatchQueue.global(qos: .userInitiated).async {
            do {
                let detector = try CoreMLFaceDetector(computeUnits: units)
                let report = try Benchmark.run(detector: detector, image: image, imageName: imageName,
                                               warmup: warmup, runs: runs) { done in
                    DispatchQueue.main.async { self.completed = done }
                }
                print("[benchmark] \(report.summary)")
                DispatchQueue.main.async {
                    self.report = report
                    self.isRunning = false
                }
            } catch {
                DispatchQueue.main.async {
                    self.error = "\(error)"
                    self.isRunning = false
                }
            }
        }
    }
}
