#ifndef SWITCHYARD_EXT_ESTIMATE_H
#define SWITCHYARD_EXT_ESTIMATE_H

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin extension "sy.estimate/1": a cost estimate before any spending.
 * Absent: the host prices the job from plugin.json's pricing table alone. */
#define SY_EXTENSION_ESTIMATE "sy.estimate/1"

typedef struct sy_extension_estimate {
    uint32_t struct_size;
    /* [worker thread, concurrent, no network] request as validate. Writes
     * {"amount_minor":int,"currency":"USD","basis":"..."} */
    sy_status_t (*estimate)(const sy_plugin_t *plugin, const sy_call_t *call,
                            sy_str_t request, const sy_sink_t *out);
} sy_extension_estimate_t;
enum { SY_EXTENSION_ESTIMATE_V1_0_SIZE = SY_SIZE_THROUGH(sy_extension_estimate_t, estimate) };


#ifdef __cplusplus
}
#endif

#endif
