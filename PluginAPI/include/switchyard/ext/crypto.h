#ifndef SWITCHYARD_EXT_CRYPTO_H
#define SWITCHYARD_EXT_CRYPTO_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.crypto/1": the primitives provider protocols need, so a
 * plugin never links a crypto library of its own (two copies of one library
 * in a process is how hosts get corrupted). All inputs are borrowed bytes. */
#define SY_SERVICE_CRYPTO "sy.crypto/1"

typedef struct sy_service_crypto {
    uint32_t struct_size;
    /* [call thread] Writes the 32-byte raw SHA-256 digest of `data`. */
    sy_status_t (*sha256)(const sy_call_t *call, sy_str_t data, const sy_sink_t *digest);
    /* [call thread] Writes the 32-byte raw HMAC-SHA256 of `data` under `key`. */
    sy_status_t (*hmac_sha256)(const sy_call_t *call, sy_str_t key, sy_str_t data,
                               const sy_sink_t *mac);
    /* [call thread] SY_OK if `signature` (64 raw bytes) is a valid Ed25519
     * signature of `message` by `public_key` (32 raw bytes); SY_E_FAILED if
     * not; SY_E_INVALID_ARGUMENT for malformed key or signature lengths. */
    sy_status_t (*ed25519_verify)(const sy_call_t *call, sy_str_t public_key,
                                  sy_str_t signature, sy_str_t message);
    /* [call thread] Writes a compact HS256 JWT for the JSON object `claims`
     * (header {"alg":"HS256","typ":"JWT"}) signed with `secret`. */
    sy_status_t (*jwt_hs256)(const sy_call_t *call, sy_str_t claims, sy_str_t secret,
                             const sy_sink_t *token);
} sy_service_crypto_t;
enum { SY_SERVICE_CRYPTO_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_crypto_t, jwt_hs256) };


#ifdef __cplusplus
}
#endif

#endif
