import CPluginAPI
import Foundation

/// What this host is, for the compatibility checks of the loader and installer.
public enum HostPlatform {
    public static let abiMajor = Int(SY_ABI_MAJOR)
    public static let abiMinor = Int(SY_ABI_MINOR)
    public static var abiString: String { "\(abiMajor).\(abiMinor)" }
    public static let hostVersion = "0.1.0"

    /// `linux-x86_64`, `linux-aarch64`, `macos-arm64`.
    public static var platform: String {
        #if os(Linux)
        let os = "linux"
        #elseif os(macOS)
        let os = "macos"
        #else
        let os = "unknown"
        #endif
        #if arch(x86_64)
        let arch = "x86_64"
        #elseif arch(arm64)
        let arch = "aarch64"
        #else
        let arch = "unknown"
        #endif
        return "\(os)-\(arch)"
    }

    /// The Swift toolchain this host was built with, as `swift-MAJOR.MINOR`.
    /// The Swift ABI is not stable on Linux: a Swift plugin runs against the
    /// host's Swift runtime, so it must come from the same major.minor.
    public static var toolchain: String {
        #if compiler(>=6.4)
        return "swift-6.4"
        #elseif compiler(>=6.3)
        return "swift-6.3"
        #elseif compiler(>=6.2)
        return "swift-6.2"
        #elseif compiler(>=6.1)
        return "swift-6.1"
        #else
        return "swift-6.0"
        #endif
    }

    /// Toolchains a plugin may declare: the host's own Swift, or a C ABI-only
    /// build that needs no particular runtime ("c", also for Rust or Zig).
    public static func isToolchainCompatible(_ declared: String) -> Bool {
        if declared == "c" || declared == "none" { return true }
        return declared == toolchain || declared.hasPrefix(toolchain + ".")
    }
}
