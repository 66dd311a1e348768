import CoreML

/// The Core ML compute units a user can pick; changing them reloads the model.
enum ComputeUnitsOption: String, CaseIterable, Identifiable {
    case all
    case cpuAndGPU
    case cpuOnly
    case cpuAndNeuralEngine

    var id: String { rawValue }

    var label: String {
        switch self {
        case .all: return "All"
        case .cpuAndGPU: return "CPU + GPU"
        case .cpuOnly: return "CPU only"
        case .cpuAndNeuralEngine: return "CPU + ANE"
        }
    }

    var mlComputeUnits: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuOnly: return .cpuOnly
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        }
    }

    /// From an environment value such as FEATHERFACE_COMPUTE_UNITS=cpuOnly (the raw values above).
    init?(environmentValue: String?) {
        guard let value = environmentValue, let option = ComputeUnitsOption(rawValue: value) else { return nil }
        self = option
    }
}
