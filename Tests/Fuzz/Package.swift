// swift-tools-version:6.1
import PackageDescription

// libFuzzer drivers for the fuzz targets in Tests/Support/Fuzz. A package of
// its own, so the normal build never needs -sanitize=fuzzer; scripts/fuzz.sh
// builds and runs it.
let package = Package(
    name: "SwitchyardFuzz",
    dependencies: [.package(name: "Switchyard", path: "../..")],
    targets: [
        .executableTarget(
            name: "yard-fuzz",
            dependencies: [.product(name: "SwitchyardTesting", package: "Switchyard"),
                           .product(name: "SwitchyardHost", package: "Switchyard")],
            path: "Sources/yard-fuzz"
        ),
    ]
)
