#ifndef SWITCHYARD_EXT_RECONCILE_H
#define SWITCHYARD_EXT_RECONCILE_H

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin extension "sy.reconcile/1": find a job whose submit may have
 * reached the provider although the host never stored its ref (the host
 * crashed in between). Possible where the provider accepts a client-chosen
 * id (Kling external_task_id, ComfyUI prompt_id). Without this extension
 * such a job goes to needs_attention: it is never blindly resubmitted. */
#define SY_EXTENSION_RECONCILE "sy.reconcile/1"

typedef struct sy_extension_reconcile {
    uint32_t struct_size;
    /* [worker thread, concurrent] request {"capability","inputs","config","job"}. Writes
     * {"ref":<any JSON>} when the provider knows the job, {"ref":null} when it
     * is sure it never received it, or {"error":{...}} when it cannot tell. */
    sy_status_t (*reconcile)(const sy_plugin_t *plugin, const sy_call_t *call,
                             sy_str_t request, const sy_sink_t *out);
} sy_extension_reconcile_t;
enum { SY_EXTENSION_RECONCILE_V1_0_SIZE = SY_SIZE_THROUGH(sy_extension_reconcile_t, reconcile) };


#ifdef __cplusplus
}
#endif

#endif
