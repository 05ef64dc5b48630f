import CPluginAPI

/// The frozen v1.0 sizes of the structs the other side writes (version.h):
/// a reader accepts any struct_size at least this large (the writer was built
/// against a later minor that appended fields) and nothing smaller.
enum FrozenLayout {
    static let serviceV1_0Sizes: [String: Int] = [
        SY_SERVICE_LOG: SY_SERVICE_LOG_V1_0_SIZE,
        SY_SERVICE_CLOCK: SY_SERVICE_CLOCK_V1_0_SIZE,
        SY_SERVICE_HTTP: SY_SERVICE_HTTP_V1_0_SIZE,
        SY_SERVICE_SECRETS: SY_SERVICE_SECRETS_V1_0_SIZE,
        SY_SERVICE_ARTIFACTS: SY_SERVICE_ARTIFACTS_V1_0_SIZE,
        SY_SERVICE_CRYPTO: SY_SERVICE_CRYPTO_V1_0_SIZE,
        SY_SERVICE_KV: SY_SERVICE_KV_V1_0_SIZE,
        SY_SERVICE_PROCESS: SY_SERVICE_PROCESS_V1_0_SIZE,
    ]
}
