#ifndef SWITCHYARD_EXT_WEBHOOK_H
#define SWITCHYARD_EXT_WEBHOOK_H

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin extension "sy.webhook/1": turn a provider's webhook delivery into a
 * job update. The plugin verifies the signature (with sy.crypto/1); the host
 * deduplicates deliveries and never lets an update regress a finished job. */
#define SY_EXTENSION_WEBHOOK "sy.webhook/1"

typedef struct sy_extension_webhook {
    uint32_t struct_size;
    /* [worker thread, concurrent] request {"headers":{lower-case name:value},
     * "body_base64","config"}. Writes {"match":{...fields of a ref...},
     * "update":<poll result>,"dedupe_key"?,"poll"?}, or SY_E_DENIED with
     * {"error":{...}} for a bad signature or a timestamp out of tolerance.
     * The host applies the update to the job whose stored ref contains every
     * member of "match"; it drops a delivery whose "dedupe_key" (the
     * provider's delivery id) it has already applied; with "poll":true it
     * polls the job with its stored ref instead of applying "update". */
    sy_status_t (*webhook)(const sy_plugin_t *plugin, const sy_call_t *call,
                           sy_str_t request, const sy_sink_t *out);
} sy_extension_webhook_t;
enum { SY_EXTENSION_WEBHOOK_V1_0_SIZE = SY_SIZE_THROUGH(sy_extension_webhook_t, webhook) };


#ifdef __cplusplus
}
#endif

#endif
