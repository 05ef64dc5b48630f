#ifndef SWITCHYARD_EXT_KV_H
#define SWITCHYARD_EXT_KV_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.kv/1": a small durable key-value store scoped to the
 * plugin id (one plugin cannot read another's keys). For caches such as a
 * JWKS or an upload token, not for job state: job state belongs in the ref. */
#define SY_SERVICE_KV "sy.kv/1"

typedef struct sy_service_kv {
    uint32_t struct_size;
    /* [call thread] Writes the value; SY_E_NOT_FOUND if absent or expired. */
    sy_status_t (*get)(const sy_call_t *call, sy_str_t key, const sy_sink_t *value);
    /* [call thread] Stores a value (<= 1 MiB); ttl_ms <= 0 means no expiry. */
    sy_status_t (*put)(const sy_call_t *call, sy_str_t key, sy_str_t value, int64_t ttl_ms);
    /* [call thread] Removes a key; removing an absent key is SY_OK. */
    sy_status_t (*remove)(const sy_call_t *call, sy_str_t key);
} sy_service_kv_t;
enum { SY_SERVICE_KV_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_kv_t, remove) };


#ifdef __cplusplus
}
#endif

#endif
