// swift-tools-version:6.1
import PackageDescription

// The PluginAPI on its own: the C headers (CPluginAPI) and the Swift plugin
// SDK, Foundation only. A plugin author depends on this package (by path or
// URL) and resolves nothing of the host's. The root Package.swift builds the
// same sources as its own targets, so the host and bundled plugins are built
// from exactly these files (ADR 0017).
let package = Package(
    name: "SwitchyardPluginAPI",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SwitchyardPluginSDK", targets: ["SwitchyardPluginSDK"]),
        // C plugins need only the headers; this product is for Swift code that
        // wants the raw ABI types without the SDK.
        .library(name: "CPluginAPI", targets: ["CPluginAPI"]),
    ],
    targets: [
        .target(
            name: "CPluginAPI",
            path: ".",
            exclude: ["Swift", "README.md", "schemas", "Package.swift"],
            sources: ["src"],
            publicHeadersPath: "include"
        ),
        .target(name: "SwitchyardPluginSDK", dependencies: ["CPluginAPI"], path: "Swift/SDK"),
    ]
)
