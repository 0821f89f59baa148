// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

// FilePath and Errno: every layer and the executable import SystemPackage.
let systemPackage: Target.Dependency = .product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "cttune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "cttune", targets: ["cttune"]),
        .library(name: "Tuner", targets: ["TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", "TunerRender"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // libkmod, seen only by Sources/TunerSystem/Kmod/KmodContext.swift.
        .systemLibrary(
            name: "CKmod",
            pkgConfig: "libkmod",
            providers: [.apt(["libkmod-dev"])]
        ),
        // libmnl with ctnetlink's headers, seen only by Sources/TunerSystem/Netlink/ConntrackNetlink.swift.
        .systemLibrary(
            name: "CMnl",
            pkgConfig: "libmnl",
            providers: [.apt(["libmnl-dev"])]
        ),
        // libnftables, seen only by Sources/TunerSystem/Nftables/NftContext.swift.
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftables",
            providers: [.apt(["libnftables-dev"])]
        ),
        // LibYAML's parser, seen only by Sources/TunerCore/YAML/YAMLNode.swift.
        .systemLibrary(
            name: "CYaml",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // openat2(2) with RESOLVE_IN_ROOT, seen only by Sources/TunerCore/Host/SystemRoot.swift.
        .target(name: "CRootPath"),
        // Turns profiles/*.yaml into Swift source so the binary carries them.
        .executableTarget(name: "embed-profiles", path: "Sources/embed-profiles"),
        .plugin(
            name: "EmbedProfiles",
            capability: .buildTool(),
            dependencies: ["embed-profiles"]
        ),
        // The library, one target per layer; a target sees only the layers
        // below it, so the compiler holds the direction (docs/architecture.md).
        // Values, errors, formatting and the host's files through one root:
        // links no libkmod or libmnl.
        .target(
            name: "TunerCore",
            dependencies: [
                "CRootPath",
                "CYaml",
                systemPackage,
            ]
        ),
        // The system libraries: libkmod, ctnetlink through libmnl, libnftables, setns.
        .target(name: "TunerSystem", dependencies: ["TunerCore", "CKmod", "CMnl", "CNftables", systemPackage]),
        // Profiles, the planner and the GC model: pure functions of their inputs.
        .target(
            name: "TunerModel",
            dependencies: ["TunerCore", systemPackage],
            plugins: ["EmbedProfiles"]
        ),
        // What the commands do: plan inputs, apply, rollback, modules, rules, status, learn.
        .target(name: "TunerWorkflows", dependencies: ["TunerCore", "TunerSystem", "TunerModel", systemPackage]),
        // Every text, JSON and Prometheus rendering of the workflows' results.
        .target(
            name: "TunerRender",
            dependencies: ["TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", systemPackage]
        ),
        .executableTarget(
            name: "cttune",
            dependencies: [
                "TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", "TunerRender",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                systemPackage,
            ]
        ),
        // A bounded loopback TCP load for the real-kernel tests and the benchmark.
        .executableTarget(name: "ct-loadgen", path: "Sources/ct-loadgen"),
        // Interposes delete_module(2) in the test binary: records libkmod's
        // unload calls and returns chosen errors; nothing is really unloaded.
        .target(name: "CDeleteModuleStub", path: "Tests/CDeleteModuleStub"),
        // Helpers every test target shares: tools, namespaces, the global
        // lock, load runs. Links the core and the model only.
        .target(name: "TestSupport", dependencies: ["TunerCore", "TunerModel"], path: "Tests/TestSupport"),
        // The pure tests: the model, profiles and planner, without root and
        // without libkmod or libmnl.
        .testTarget(name: "ModelTests", dependencies: ["TunerCore", "TunerModel", "TestSupport", systemPackage]),
        // Fixture trees, real tools, real module trees, namespaces.
        .testTarget(
            name: "TunerTests",
            dependencies: [
                "TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", "TunerRender", "TestSupport", "CDeleteModuleStub", "CRootPath",
                systemPackage,
            ],
            exclude: ["Fixtures"]
        ),
        // Load on the real kernel (root, network namespaces, the global max under a lock); each test says why it skips.
        .testTarget(
            name: "KernelTests",
            dependencies: ["TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", "TunerRender", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
