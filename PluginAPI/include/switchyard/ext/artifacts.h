#ifndef SWITCHYARD_EXT_ARTIFACTS_H
#define SWITCHYARD_EXT_ARTIFACTS_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.artifacts/1": the content-addressed artifact store.
 * Plugins get handles ("sha256:<hex>"), never paths. Outputs named in a poll
 * result as {"artifact":"sha256:..."} are already safe in the store; outputs
 * named as {"url":...} are downloaded by the host before the provider's
 * retention (plugin.json result_retention_seconds) ends. */
#define SY_SERVICE_ARTIFACTS "sy.artifacts/1"

typedef struct sy_service_artifacts {
    uint32_t struct_size;
    /* [call thread] Store `size` bytes (borrowed). Writes
     * {"artifact":"sha256:<hex>","size":int,"media_type":...}. */
    sy_status_t (*put)(const sy_call_t *call, sy_str_t media_type,
                       const void *data, size_t size, const sy_sink_t *handle);
    /* [call thread, blocks] Download {"url","headers"?,"media_type"?,
     * "sha256"?,"size"?} into the store, subject to the http allow-list;
     * verifies sha256 and size when given. Writes the handle document as put. */
    sy_status_t (*download)(const sy_call_t *call, sy_str_t request, const sy_sink_t *handle);
    /* [call thread] Write the bytes of artifact `handle` to `data` (in chunks).
     * SY_E_NOT_FOUND for an unknown handle. */
    sy_status_t (*read)(const sy_call_t *call, sy_str_t handle, const sy_sink_t *data);
} sy_service_artifacts_t;

enum { SY_SERVICE_ARTIFACTS_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_artifacts_t, read) };

#ifdef __cplusplus
}
#endif

#endif
