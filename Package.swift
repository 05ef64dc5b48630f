// swift-tools-version:6.1
import PackageDescription

// One package: the C contract (PluginAPI), the Swift plugin SDK, the host core,
// the thin `yard` CLI, first-party plugins and tests. See docs/adr/ for why.
let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "yard", targets: ["yard"]),
        // Loads one plugin out of the host's process, sandboxed (docs/isolation.md).
        .executable(name: "yard-plugin-runner", targets: ["PluginRunner"]),
        .library(name: "SwitchyardPluginSDK", targets: ["SwitchyardPluginSDK"]),
        .library(name: "SwitchyardHost", targets: ["SwitchyardHost"]),
        // Provider stand-ins, and test helpers, for our tests and third-party adapter authors.
        .library(name: "SwitchyardStandIns", targets: ["SwitchyardStandIns"]),
        .library(name: "SwitchyardTesting", targets: ["SwitchyardTesting"]),
        // First-party plugins: each builds to its own shared object.
        .library(name: "SyEcho", type: .dynamic, targets: ["EchoPlugin"]),
        .library(name: "SyCMinimal", type: .dynamic, targets: ["CMinimalPlugin"]),
        .library(name: "SyRunPod", type: .dynamic, targets: ["RunPodPlugin"]),
        .library(name: "SyFal", type: .dynamic, targets: ["FalPlugin"]),
        .library(name: "SyComfyUI", type: .dynamic, targets: ["ComfyUIPlugin"]),
        .library(name: "SyHuggingFace", type: .dynamic, targets: ["HuggingFacePlugin"]),
        .library(name: "SyStripeBilling", type: .dynamic, targets: ["StripeBillingPlugin"]),
        .library(name: "SyKling", type: .dynamic, targets: ["KlingPlugin"]),
        .library(name: "SyModal", type: .dynamic, targets: ["ModalPlugin"]),
        .library(name: "SyLocalMedia", type: .dynamic, targets: ["LocalMediaPlugin"]),
        .library(name: "SyLocalSpeech", type: .dynamic, targets: ["LocalSpeechPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.24.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // The stable C ABI: headers only, plus a translation unit that pins the layout.
        // PluginAPI/Package.swift builds these same sources (and the SDK's) as a
        // package of their own, for plugin authors (ADR 0017).
        .target(
            name: "CPluginAPI",
            path: "PluginAPI",
            exclude: ["Swift", "README.md", "schemas", "Package.swift"],
            sources: ["src"],
            publicHeadersPath: "include"
        ),
        // The host <-> runner wire protocol: one header both sides include.
        .target(name: "CRunnerProtocol", path: "Host/Runner/Protocol", publicHeadersPath: "include"),
        // yard-plugin-runner: C, so that it links nothing a plugin could clash
        // with and every system call it makes is known to its seccomp filter.
        .executableTarget(
            name: "PluginRunner",
            dependencies: ["CPluginAPI", "CRunnerProtocol"],
            path: "Host/Runner/Main",
            linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]
        ),
        // What plugin authors depend on. Foundation only: a plugin must never carry
        // a second copy of a package the host links.
        .target(
            name: "SwitchyardPluginSDK",
            dependencies: ["CPluginAPI"],
            path: "PluginAPI/Swift/SDK"
        ),
        // JSON values, canonical form and the JSON Schema subset the catalog uses.
        .target(name: "SwitchyardJSON", path: "Host/JSON"),
        .target(
            name: "SwitchyardHost",
            dependencies: [
                "CPluginAPI",
                "CRunnerProtocol",
                "SwitchyardJSON",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Host/Core",
            // The ABI's document schemas (a link to PluginAPI/schemas), for the conformance kit.
            resources: [.embedInCode("Conformance/schemas/abi-v1.schema.json")]
        ),
        // Provider stand-ins: loopback servers that answer as each provider does
        // (PROVIDERS.md, recordings), with their media and recordings compiled in,
        // so `yard standin …` works from an installed binary and adapter authors
        // can test against them.
        .target(
            name: "SwitchyardStandIns",
            dependencies: [
                "SwitchyardHost",
                "SwitchyardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Host/StandIns",
            // Real media the stand-ins answer with (tiny H.264 clips, an MP3) and
            // ComfyUI's recorded node catalogue, compiled in.
            resources: [.embedInCode("Media/clip-5s.mp4"), .embedInCode("Media/clip-6s.mp4"), .embedInCode("Media/clip-10s.mp4"),
                        .embedInCode("Media/speech-3s.mp3"), .embedInCode("Fixtures/comfyui-object_info.json")]
        ),
        // Test helpers for our tests and third-party adapter authors (the
        // adapter test host, fuzz targets); re-exports the stand-ins.
        .target(
            name: "SwitchyardTesting",
            dependencies: [
                "SwitchyardHost",
                "SwitchyardJSON",
                "SwitchyardStandIns",
            ],
            path: "Tests/Support"
        ),
        // `yard serve` as a library: the HTTP API (/api/v1), its tokens and
        // tenancy, live progress, metrics, the webhook intake and the daemon
        // that drives the store (docs/adr/0018-http-api.md).
        .target(
            name: "SwitchyardServer",
            dependencies: [
                "SwitchyardHost",
                "SwitchyardJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Host/Server",
            resources: [.embedInCode("openapi.json"), .embedInCode("page.html")]
        ),
        .executableTarget(
            name: "yard",
            dependencies: [
                "SwitchyardHost",
                "SwitchyardServer",
                "SwitchyardStandIns",
                "SwitchyardJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Host/CLI"
        ),
        .target(
            name: "EchoPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/echo",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "RunPodPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/runpod",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "FalPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/fal",
            exclude: ["plugin.json"]
        ),
        // Workflow templates are data in Registry/workflows (linked into the
        // plugin's folder), compiled in: a plugin reads no files.
        .target(
            name: "ComfyUIPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/comfyui",
            exclude: ["plugin.json"],
            resources: [.embedInCode("workflows/image.generate.json")]
        ),
        .target(
            name: "HuggingFacePlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/huggingface",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "StripeBillingPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/stripe-billing",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "KlingPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/kling",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "ModalPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/modal",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "LocalMediaPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/local-media",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "LocalSpeechPlugin",
            dependencies: ["SwitchyardPluginSDK"],
            path: "Plugins/local-speech",
            exclude: ["plugin.json"]
        ),
        .target(
            name: "CMinimalPlugin",
            dependencies: ["CPluginAPI"],
            path: "Plugins/c-minimal",
            exclude: ["plugin.json"],
            publicHeadersPath: "."
        ),
        .testTarget(name: "JSONTests", dependencies: ["SwitchyardJSON"], path: "Tests/JSONTests"),
        .testTarget(name: "PluginSDKTests", dependencies: ["SwitchyardPluginSDK"], path: "Tests/PluginSDKTests"),
        .testTarget(
            name: "HostTests",
            dependencies: ["SwitchyardHost", "SwitchyardTesting", "SwitchyardServer", .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "GRDB", package: "GRDB.swift")],
            path: "Tests/HostTests"
        ),
    ]
)
