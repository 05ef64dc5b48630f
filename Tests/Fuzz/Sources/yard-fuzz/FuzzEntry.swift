import Foundation
import SwitchyardTesting

/// libFuzzer's entry: YARD_FUZZ_TARGET (manifest, pipeline, package,
/// webhook) picks the target; a finding traps, so libFuzzer saves the input.
nonisolated(unsafe) let target = FuzzTargets.Target(rawValue: ProcessInfo.processInfo.environment["YARD_FUZZ_TARGET"] ?? "") ?? .pipeline
nonisolated(unsafe) let scratch: FuzzTargets.Scratch = {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("yard-fuzz-\(getpid())")
    do { return try FuzzTargets.Scratch(root: root) } catch {
        FileHandle.standardError.write(Data("yard-fuzz: cannot create \(root.path): \(error)\n".utf8))
        exit(2)
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(bytes: bytes, count: count)
    do { try FuzzTargets.run(target, data, scratch: scratch) } catch {
        FileHandle.standardError.write(Data("yard-fuzz finding: \(error)\n".utf8))
        abort()
    }
    return 0
}
