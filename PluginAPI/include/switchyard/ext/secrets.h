#ifndef SWITCHYARD_EXT_SECRETS_H
#define SWITCHYARD_EXT_SECRETS_H

#include "../host.h"
#include "../status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host service "sy.secrets/1": secret values the plugin's manifest declares
 * (plugin.json "secrets"). The host answers nothing else. */
#define SY_SERVICE_SECRETS "sy.secrets/1"

typedef struct sy_service_secrets {
    uint32_t struct_size;
    /* [call thread] Write the value of secret `name` to `value`. Returns
     * SY_E_DENIED if the manifest does not declare it, SY_E_NOT_FOUND if it
     * is declared but not set. The plugin must not log or return the value. */
    sy_status_t (*get)(const sy_call_t *call, sy_str_t name, const sy_sink_t *value);
} sy_service_secrets_t;
enum { SY_SERVICE_SECRETS_V1_0_SIZE = SY_SIZE_THROUGH(sy_service_secrets_t, get) };


#ifdef __cplusplus
}
#endif

#endif
